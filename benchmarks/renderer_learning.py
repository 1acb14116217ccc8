"""Proof that the renderer learns: `configs/renderer_small.yaml` trained on mini-MEAD **with free head
motion**, scored on actors it never saw.

    python benchmarks/renderer_learning.py            # CPU; cache built under --out unless --cache-dir
    python benchmarks/renderer_learning.py --default-data   # MEAD-like heads that barely move

1. Builds (or reuses) a 24-actor mini-MEAD cache at 64 px (22 training actors, 1 validation,
   1 test; speaker split) whose heads turn, tilt and move (``make_mini_mead(free_motion=True)``:
   motion a keypoint renderer must model; on the default mini-MEAD copying the source frame is
   already close to every frame).
2. Trains ``FaceRenderer`` exactly as a user does, ``emoface fit --config configs/renderer_small.yaml``
   (in-process, with the cache and a run folder on the command line).
3. Loads the last checkpoint and, for every clip of the two held-out actors, reconstructs each
   driving frame from the clip's **first** frame with the batched inference path
   (:class:`emoface.rendering.FaceVid2VidRenderer.reconstruct`), against the "source frame
   repeated" baseline and against the same renderer driven by the **source's keypoints held
   still** (what it draws when it ignores the keypoints); frame 0, the source itself, is left out
   of the scores. PSNR and SSIM are emoface's metrics (scikit-image definitions); LPIPS needs
   torchvision's AlexNet weights (``alexnet-owt-7be5be79.pth`` in the torch hub cache or
   ``--lpips-weights``) and is reported as n/a without them. The estimator's yaw and pitch are
   correlated (Pearson, over all held-out frames) with the head pose preprocessing fitted.

Criteria (issue 25; exit status 1 when one fails): PSNR >= source repeated + 3 dB; SSIM above it;
PSNR driven by each frame's keypoints >= held still + 2 dB (the keypoints matter); LPIPS below
source repeated (when it can be computed); yaw and pitch correlation >= 0.9.

Status (2026-12-06, 2-core Intel Xeon CPU, mini-MEAD generator 3, both runs with one thread side
by side, training 3211 / 3210 s): the config as it ships, its landmark guide paying for the mouth's
shape too (``landmark_guide_shape_weight`` 16, below, "The mouth's shape"):

    seed               driven / held still (dB)  SSIM   yaw / pitch r  mouth keypoints  lip sync from audio
    0 (CI's)           24.59 / 21.90             0.766  0.991 / 0.941  r 0.74, 0.64 x   91 % (recon. 64 %)
    1                  25.08 / 21.51             0.789  0.989 / 0.873  r 0.83, 0.71 x   100 % (recon. 82 %)

(the still source 21.10 dB, SSIM 0.641). Seed 0 meets every criterion (margins +0.49 and +0.68 dB);
seed 1 meets every one but the pitch (0.873, 0.9 asked; 0.924 without the shape term), with larger
PSNR margins (+0.99, +1.57 dB). Both pipelines (benchmarks/pipeline_learning.py) meet every
criterion, lip sync from audio included.
The script's defaults (seed 0, two threads) on a 2-core AMD EPYC the same day, quiet: training
1794 s (29.9 min), driven 24.83 / held still 21.62 dB, SSIM 0.775, yaw / pitch r 0.993 / 0.923:
every criterion (margins +0.74 and +1.21 dB), and its pipeline every one too (lip sync from audio on
98 % of clips; benchmarks/pipeline_learning.py, "Latest"). Its full step there: 0.43 s, 0.62x the
issue's probe renderer timed beside it (below, "Step time").

Before the shape term (2026-12-05): every criterion passed with the
config, its expression prior at weight 1 (the recipe's 5 shrank the mouth's deltas;
below, "Where the mouth is lost"), trained as CI trains it (``--threads 1``, seed 0, training 2494 s
beside two other jobs): driven 24.71 dB against 21.10 for the still source (+3.61 dB), SSIM 0.773,
3.05 dB above itself held still (21.66), yaw / pitch / roll r 0.991 / 0.919 / 0.965, and its
pipeline (benchmarks/pipeline_learning.py) meets every criterion too, lip sync from audio on 93 % of
the clips. With ``--seed 1 --threads 2`` (training 1418 s, quiet cores) it scored 24.50 / 21.89 dB,
SSIM 0.761, yaw / pitch r 0.986 / 0.926: every criterion too (its pipeline not measured yet). With
the weight at 5 (the config until then), the landmark guide on the inner lips' middles too (below,
"The mouth"), trained as CI trains it (``python benchmarks/renderer_learning.py --threads 1``,
seed 0, training 2025 s beside another one-thread run): driven 24.43 dB against 21.10 for the still source (+3.33 dB, 3
asked), SSIM 0.760 / 0.641, 2.68 dB above itself driven by the source's keypoints held still
(21.75), yaw / pitch / roll r 0.991 / 0.925 / 0.961; CI's run (commit 17a7959, renderer 2076 s)
repeated every figure. Without the inner lips (CI's run of the
config before, the same data and seed) it scored 23.94 / 21.93 dB, SSIM 0.729, pitch 0.937: the
PSNR margin -0.16 dB short and the keypoints' 2 dB met by 0.008 dB. With ``--seed 1`` the order
turns: with / without the inner lips driven 24.49 / 24.85 dB (held still 21.71 / 21.73), SSIM 0.758
/ 0.776, pitch r **0.880** / 0.937 (training 2118 / 2068 s, side by side): the inner lips' effect is
within the spread between seeds, and each config meets every criterion with one seed of two.

Before the inner lips (generator 2): every criterion passed in the default run below, but
not in every run: the same config trained with one thread (``--threads 1``, as CI trains it; another
run numerically) scored driven 24.65 / held still 21.61 dB, SSIM 0.764, yaw / pitch r 0.990 /
**0.865**, and ``--seed 1 --threads 1`` scored 24.15 / 21.74, SSIM 0.743, yaw / pitch 0.989 /
**0.867** with a PSNR margin of +0.01 dB (2193 / 2197 s of training each, the two runs side by
side). The pitch fails two runs of three; the other criteria pass in all three (the keypoints'
margin +0.41 to +1.03 dB, yaw 0.989-0.990). The warp no longer collapses;
with the generator's image skip, the warp loss (below, "The image skip"), the estimator's angles set
by the head-pose losses alone, the learning rate / 10 for the last quarter of the run, training
pairs mirrored at random (the public recipe's flip) and the mouth's landmark guide and loss (below,
"The mouth"), the default run (``python benchmarks/renderer_learning.py --threads 2``, 5000 steps,
training 1393 s) scores PSNR 24.69 dB against 21.13 for the still source (+3.56 dB, 3 asked), SSIM
0.766 / 0.641, 2.76 dB above itself driven by the source's keypoints held still (21.93), yaw /
pitch / roll r 0.990 / 0.908 / 0.978, and it draws the mouth (SyncNet finds the audio offset in its
reconstructions of 75 % of the held-out clips; benchmarks/pipeline_learning.py). The pitch is the
closest criterion: with ``mouth_weight`` 10 it was 0.925 after 5000 steps and 0.896 after 4000, and
the config before the mouth options (4000 steps) passed with 0.919 on seed 0 but failed with
``--seed 1`` (driven 24.03, held still 21.65, pitch r 0.858; PSNR margin -0.10 dB). The estimator's
pitch error on the validation actor swings between 2.9 and 4.0 deg over the last 2000 steps of a
run (about 7 deg, a constant guess's error, until step 2500): it is learned late and read noisily at
64 px. An exponential moving average of the weights does not steady it (2026-12-05, both one-thread
runs again, EMAs from step 1250 kept beside the raw weights of the same run, so the comparison is
paired): pitch r with EMA decay 0.998 / 0.999 / 0.9995 0.869 / 0.852 / 0.818 against 0.865 raw
(seed 0) and 0.875 / 0.870 / 0.847 against 0.881 (seed 1); driven 24.59 / 24.46 / 23.76 dB against
24.65 (seed 0). The late weights are the best ones, not noisy ones; no EMA is shipped. (The seed-0
raw run repeated the figures above exactly on the same cache; the seed-1 run, on another build of
the same data, scored 24.48 / 22.04 dB, pitch 0.881: mini-MEAD's videos were not bit-reproducible,
x264's mbtree encoding the same frames differently from run to run. Since generator version 3 they
are written without it, the same frames in every build.)

Why it collapsed. With the public recipe trained from scratch, the dense motion collapses onto its
"no motion" candidate within the first 100 steps, on the default and on the free-motion data
alike, before the estimator has learned the head pose (after 100 steps its yaw error is still the
spread of the data). From then on the keypoint candidates get about 1e-3 of the softmax weight and
no gradient, and the renderer only re-encodes the source. Measured with a training loop that logs
the no-motion weight (validation logs it too: ``val/background_weight``, and ``val/psnr_held``),
free-motion data, batch 8, lr 1e-3:

    recipe as shipped             no-motion weight 0.999 at step 100 (PSNR driven = held still)
    t / expression heads zeroed   0.999 at step 50 on the default data (less keypoint noise: no help)
    true pose for the keypoints   0.83 at step 50, 0.87 at step 150 (teacher forcing the rotation
    (teacher forcing), heads 0    with preprocessing's pose); driven still 0.1 dB below held still

In all three the estimator had not learned the pose by step 150 (yaw error 9.5-9.7 deg against
9.8 for the untrained one), although the pose loss supervises it directly. Trained alone on the
pose losses (same sizes, batch 8, 0.07 s a step), its yaw correlation on the validation actor was
0.35 / 0.02 / 0.27 / 0.23 / 0.79 / 0.84 / 0.87 at steps 0 / 200 / ... / 1200 (pitch 0.33-0.66 at
1000-1200, noisy): the pose takes about ten times the steps the warp takes to collapse, and until
it is learned the keypoints carry no motion. (lr 2e-4, or the bin cross-entropy alone, were slower.)
Without zeroed heads even a pose warm-up collapsed at once (0.9998 after 100 steps): the random
translation and expression heads move the keypoints by noise the warp learns to ignore.

The fix (``configs/renderer_small.yaml``; config switches, not the public recipe):
``FaceRenderer(pose_warmup_steps=1200, zero_motion_heads=True)``, 1200 steps of the estimator alone
on the pose losses with the translation and expression heads starting at zero, then the recipe. It
is a defect of training from scratch with a small batch, not of the networks: fine-tuning from the
public weights starts from a working warp. Validation of the run below (validation actor, one
window of 4 batches):

    step                       499     999     1499    1999
    no-motion weight           0.062*  0.062*  0.693   0.777     (* generator untrained, warm-up)
    PSNR driven / held still   15.14 / 15.14   16.96 / 16.77   22.30 / 21.90
    PSNR source repeated       22.42 throughout
    yaw / pitch error (deg)    10.6 / 7.1   7.0 / 5.6   4.1 / 6.8   4.6 / 3.7

On the held-out actors after 2400 steps (``--threads 1 --max-steps 2400``, seed 0, the test's run:
cache 146 s, training 1061 s, scoring 163 s, with another job on the other core):

    | method                                                | PSNR (dB) | SSIM  |
    | renderer, untrained (random init)                     | 15.43     | 0.535 |
    | source frame repeated                                 | 21.13     | 0.641 |
    | renderer, driven by the source's keypoints held still | 20.52     | 0.590 |
    | renderer (trained), driven by each frame's keypoints  | 20.95     | 0.609 |

    estimator against preprocessing: yaw r 0.980 (MAE 2.6 deg), pitch r 0.691 (8.7 deg),
    roll r 0.895 (3.0 deg); real std 16.1 / 9.8 / 8.0 deg.

So: the keypoints move the image (driven 0.43 dB above held still; a collapsed warp scores the two
alike to 1e-7) and the yaw criterion passes, but the renderer is 0.2 dB below "source frame
repeated" (the criterion asks 3 dB above), driven is 1.6 dB short of the 2 dB keypoint margin and
the pitch correlation is 0.69. The generator only trains for the 1200 steps after the warm-up; an
earlier run of the same config reached 22.75 dB driven / 22.29 held still / 22.42 source on the
validation actor at step 1999, so runs differ by about 0.5 dB.

What limits it now: drawing, not the warp. The 2400-step renderer redraws its own source, driven by
the source's own keypoints (the identity warp), at 20.4 dB (8 held-out clips), below the 21.0 dB of
that source against the clip's other frames: its encoder and decoder blur too much for any warp to
beat the still source. Tried (2026-12-03): ``FaceRenderer(warmup_autoencode=True)``, the generator
learning the identity warp during the pose warm-up (the dense motion's softmax, which that warp
gives nothing to learn, left as it is), 2 threads. Validation (same actor and windows as above):

    step                       499     999     1499    1999    2499    2999
    no-motion weight           0.075*  0.074*  0.757   0.876   0.875   0.808   (* warm-up)
    PSNR driven                20.68   22.10   21.04   21.39   22.59   22.33   (source repeated 22.42)
    PSNR held still            20.64   22.03   20.99   21.20   22.43   22.09
    yaw / pitch error (deg)    7.8/7.1 6.5/5.8 9.4/9.8 2.7/5.2 3.6/14.1 2.0/5.9

The warm-up now draws faces (22.10 dB at step 999 against 15.14 without), but the first full steps
undo part of it, and from step 2500 on PSNR stays within 0.2 dB of the still source. On the
held-out actors at step 2500: driven 21.69 / SSIM 0.628, held still 21.20, source repeated 21.13 /
0.641; yaw r 0.940, pitch r 0.523. That is 0.3-0.7 dB above the runs without it, about the spread
between runs, for a warm-up step of 0.55 s instead of about 0.1 s: ``renderer_small`` leaves it off.
Longer training alone is no way out at this learning rate either: 2999 and 2499 score alike.

Step time (``benchmarks/renderer_step.py``, batch 8, 64 px, 2 threads, quiet machine, medians of
35 steps): the full step 0.56-1.07 s with the public 7x7x7 mask conv against 0.73 s with 3x7x7, but
this machine's speed varied by 2x within minutes (the same pose-only step took 0.061 and 0.12 s),
so compare each against the pose-only step of its run: 9.0x for 7x7x7, 6.1x for 3x7x7, i.e. the
3x7x7 mask cuts the full step by about a third (0.37 s at the machine's faster speed; the issue
asks 0.35 s). With one thread beside another job: 1.52 s against 0.95 s. What is left is spread
over the generator's and the estimators' convolutions (``--profile``: convolution backward 37 %,
forward 24 % of the CPU time); no single operator dominates any more.
Later (2026-12-06, the same slow machine as "A later install" below, quiet): oneDNN's default-layout
kernels were the slow part of those convolutions, the 3D weight gradients above all (the mask conv's
forward and backward 0.19 s, 0.09 s channels-last). The face-vid2vid networks now give every
convolution its input channels-last on a CPU (``convolve_channels_last_on_cpu``; same results to
float rounding) and the renderer's Adam is fused: the full step went from 0.798 to 0.639 s with one
thread and from 0.546 to 0.464 s with two, the pose-only step 0.227 -> 0.195 s (one thread).
Against the issue's probe, on one machine the same day (2026-12-06, a 2-core AMD EPYC, quiet,
``benchmarks/renderer_step.py``, two threads, twice; the probe's code and config at commit 30382d2
with ``--warmup-steps -1``, see that script): the probe's renderer, which the issue timed at "about
0.35 s per step on 2 quiet cores", took 0.690-0.692 s a step here, the shipped config's full step
0.426-0.433 s (0.62-0.63x) and its pose warm-up step 0.156-0.166 s. By that ratio the issue's
machine was about twice as fast as this one that day: its 0.35 s is a ratio to keep rather than a
figure this machine can show. The same day the script's defaults trained in 1794 s (Status, above).

The image skip (``OcclusionAwareGenerator(image_skip=True)``) and the warp loss
(``FaceRenderer(warp_weight=10)``), both in ``configs/renderer_small.yaml``: the source image itself,
warped at full resolution by the dense motion's field, is blended with what the decoder draws (one
more decoder channel: the blending weight), so the decoder's blur no longer caps the renderer; and
an L1 of that warped source alone against the driving frame asks the warp itself to explain the
motion. How much a 2D warp can gain here (``--warp-headroom``: the held-out clips' first frame
warped onto every third frame by the transform fitted to preprocessing's landmarks): similarity
24.47 dB, affine 24.81, piecewise affine 26.85, against 21.38 for the still source; so the 3 dB
criterion is within reach of a warp that follows the face as well as an affine fit. Validation
(same actor and windows as above; "*": warm-up, generator untrained):

    step                           999*    1499    1999    2499    2999    3999
    image skip alone:   driven     19.58   23.62   23.49
                        held still 19.58   23.19   22.92
    skip + warp loss:   driven     19.58   23.67   24.19   24.44   24.55   23.54
                        held still 19.58   23.19   23.28   22.85   23.10   22.51
                        pitch error (deg)  10.8    15.1    11.8    2.6     3.5
    + angles from pose  driven     19.58   23.61   24.34   24.23   23.75   24.35
      losses, lr decay  held still 19.58   23.14   23.20   23.05   23.30   22.69
      at step 3000      pitch error (deg)  8.7     4.2     8.7     4.3     3.3 (2.0 at 3499)
    + horizontal flip   driven     19.58   23.48   23.88   24.72   25.02   25.58
                        held still 19.58   23.18   23.01   22.73   22.77   22.70
                        pitch error (deg)  5.3     2.5     6.0     7.1     4.6 (4.1 at 3499)
    source repeated 22.42 throughout

With the learning rate / 10 after the first epoch (step 3025; the same run up to there), driven /
held still / pitch error: 24.61 / 22.79 / 2.7 deg at step 3499 and 24.57 / 22.66 / 4.3 at 3999.

Held-out actors (44 clips):

    | method (PSNR / SSIM)      | skip alone, 2000   | skip + warp, 2500  | skip + warp, 4000  | + lr decay, 4000   | + angles, 4000     | + flip, 4000       |
    | source frame repeated     | 21.13 / 0.641      | 21.13 / 0.641      | 21.13 / 0.641      | 21.13 / 0.641      | 21.13 / 0.641      | 21.13 / 0.641      |
    | held still                | 21.96 / 0.655      | 21.57 / 0.648      | 21.22 / 0.643      | 21.49 / 0.648      | 21.46 / 0.648      | 21.40 / 0.647      |
    | driven by each frame's kp | 22.81 / 0.687      | 23.13 / 0.689      | 23.75 / 0.720      | 23.95 / 0.730      | 23.82 / 0.726      | 24.24 / 0.746      |
    | yaw / pitch / roll r      | 0.96 / 0.59 / 0.92 | 0.96 / 0.54 / 0.78 | 0.98 / 0.86 / 0.93 | 0.98 / 0.83 / 0.93 | 0.98 / 0.88 / 0.93 | 0.99 / 0.92 / 0.97 |

"+ lr decay": the learning rate / 10 after the first epoch (step 3025). "+ angles": the previous
default run (``python benchmarks/renderer_learning.py --out OUT --cache-dir CACHE --threads 2``,
4000 steps, training 37.5 min on 2 quiet cores): ``angles_from_pose_losses`` and the decay counted
in the run's steps (``lr_decay_at: 0.75``, step 3000). Its criteria: PSNR 23.82 against 21.13 + 3
(FAIL, margin -0.31 dB); SSIM 0.726 above 0.641 (pass); driven 2.36 dB above held still (pass);
yaw r 0.982 (pass); pitch r 0.882 (FAIL). Keeping the image losses off the angles raised the pitch
correlation from 0.83 to 0.88 and cost 0.13 dB, about the spread between runs. A longer pose
warm-up did not help the pitch (``-- --model.init_args.pose_warmup_steps=1800``: driven 23.80, held
still 21.76, yaw / pitch / roll r 0.982 / 0.871 / 0.905; the validation pitch error was 11.8 deg at
step 1499, inside the warm-up, where only the pose losses train).

The "+ lr decay" run (45 min on 2 cores, 7 of them shared with another job) scored PSNR 23.95
against 21.13 + 3 (margin -0.18 dB), SSIM 0.730, driven 2.46 dB above held still, yaw r 0.982,
pitch r 0.832. The run before it, without the lr decay (54 min with other work beside it): PSNR
23.75 (margin -0.38), driven 2.53 dB above held still, pitch r 0.860. The decay settles the late
swings of validation and adds 0.2 dB. Without it validation is noisy (step 3999 scored 1 dB below
step 2999 on the validation actor while the held-out actors scored their best), and one CI run of
the slow test (2200 steps) fell from driven 24.75 / held still 22.97 at step 1999 to 22.43 / 22.62
at 2200 on the validation actor; an epoch milestone (step 3025) never reached that run, the
fraction of the run (step 1650 of 2200) does. The warp loss pulls the estimator's pitch off while
the translation head is still learning (the pitch error rose to 15 deg at step 1999, then fell to
2.6 deg at 2999); with the angles set by the pose losses alone it stays at 2-9 deg. That run left
the learned warp about 1 dB below an affine fit to the true landmarks and the pitch correlation
below 0.9. The step time is unchanged by the skip, the warp loss and the detached angles; that
run's training took 37.5 min on a quiet machine (45-54 min for the earlier ones with other work
beside them), at about half this machine's fastest speed (see "Step time" below).

"+ flip" (``horizontal_flip``, now in the config; the same command, seed 0, 2026-12-04): each
training pair mirrored with probability 1/2 and its known pose with it (yaw and roll negated), as
the public recipe's ``flip_param.horizontal_flip`` does. Mirror images double the identities and
head poses the 22 training actors show; the estimator generalises better to the held-out actors
(pitch r 0.882 -> 0.919, roll 0.929 -> 0.973) and the renderer with it (driven 23.82 -> 24.24 dB;
on the validation actor 25.58 at step 3999 against 24.35). Its criteria: PSNR 24.24 against 21.13
+ 3 (pass, margin +0.11 dB: the closest one, within the spread between runs); SSIM 0.746 above
0.641; driven 2.84 dB above held still (margin +0.84); yaw r 0.985; pitch r 0.919. Times: cache
89 s, training 1142 s (19 min; full steps 0.38 s median, pose warm-up steps 0.05 s, from the fit's
progress lines), evaluation 88 s. The flip costs no step time; the machine ran at its faster speed
that day, which is most of the difference from the 37.5 min above.

The mouth. Until 2026-12-04 the renderer followed the head but drew every mouth as it is in the
source frame: open mouths of the driving frames came out closed, and the pipeline's lip sync failed
for it (benchmarks/pipeline_learning.py scores this reconstruction with SyncNet: 0 of 44 held-out
clips within one frame of the audio). The mouth can move only through the keypoints, and no
keypoint followed it. This script prints two diagnostics: the best |r| of one of the estimator's
15 x 3 expression deltas with the inner-lip opening (landmarks 62 to 66; its std is 1.7 px at
64 px), and how the reconstruction's mouth-box brightness follows the driving frame's (an open mouth
is dark inside; head motion alone gives about 0.28). Tried on 2026-12-04 (same cache and seed, 2
threads; the options are ``FaceRenderer``'s):

    run (4000 steps unless said)                      driven / held still (dB)  pitch r  best mouth |r|
    the config before the mouth options               24.24 / 21.40             0.919    0.14
    expression_weight 0.1 (recipe 5)                  23.72 / 21.55             0.915    0.30 *
    mouth_weight 10 (an L1 inside the driving         23.92 / 21.31             0.914    0.14
      mouth's landmark box, mean over the box)
    + mouth_expression_weight 20 (keypoint 0's y      stopped at step 2200: its target not learned (L1 1.2 / 20,
      delta tied to the opening by an L1), after      the target's mean is 0.066), validation 22.43 at 1999
      the warm-up
    the same from step 0, warm-up only (3000 steps)   the jaw delta constant (std 0.0002 over frames), r 0.13 *
      estimator twice as wide, 2000 steps             constant, r 0.01 *
    the same with a squared error (the option's       the jaw delta follows the lips, r 0.60 *
      loss now; weight 8 on pixels), 3000 steps
    mouth_weight 10 + mouth_expression_weight 8       24.11 / 21.86             0.821    0.16 (keypoint 0, y)
      (training 1061 s; validation 24.88 at 2499;
      still the L1: its logged loss, 0.68 at step 24
      = 8 x the mean opening in keypoint units, shows
      it started before the squared error was in place)
    landmark_guide_weight 4 (keypoints 0-3 on         24.74 / 21.60             0.860    0.25 (keypoint 3, y)
      landmarks 48, 51, 54, 57; training 1115 s)
    landmark_guide_weight 4 + mouth_weight 10         24.68 / 21.71             0.896    0.24 (keypoint 2, y)
      (training 1092 s)
    the same, 5000 steps (training 1517 s)            24.92 / 21.67             0.925    0.23 (keypoint 3, y)
    landmark_guide_weight 4 + mouth_weight 20,        24.69 / 21.93             0.908    0.28 (keypoint 3, y)
      5000 steps (training 1393 s)
    generator 3, one thread, seed 0 (as CI trains):
    the same (CI's run, commit f910f04)               23.94 / 21.93             0.937    mouth drawn 0.453
    the same with mouth_weight 40 (training 2028 s)   23.98 / 22.09             0.931    0.14 (keypoint 3, y), drawn 0.458
    guide points 48, 51, 54, 57, 62, 66 (the inner    24.43 / 21.75             0.925    0.30 (keypoint 5, y), drawn 0.434
      lips' middles too; the config now, 2025 s)
    (*: over the first 6 held-out clips, with an ad-hoc script before this one printed the line;
    the others over all 44)

The mouth loss alone trains (its L1 fell from 0.79 to 0.63) but by redrawing the face around the
mouth, not by opening it: no keypoint tells the generator where the mouth is open. The jaw delta
(``mouth_expression_weight``) in its L1 version gave every frame the median opening. Even told the
opening directly, the estimator learns to read it from a 64 px frame slowly: trained alone on it
(fresh estimator of renderer_small's sizes, batch 32, 600 steps, one thread), its correlation on
the validation actor reached 0.36 with an MSE, 0.39 with the frames upsampled 2x first, and -0.11
with an L1 (0.55 on its training batches). The mouth at 64 px is about 12 x 6 px (lips included).

What works is LivePortrait's landmark guidance (``landmark_guide_weight``, ``landmark_guide_points``):
the first keypoints of source and driving frame must land on chosen landmarks of their frames, so
they sit on the lips and move with them, and the keypoint difference the dense motion sees is the
lips' own motion. With it, on the first 12 held-out clips (an ad-hoc script, the driving keypoints
from the renderer's own reconstruction): the guided keypoints land 1.3-1.5 px from their landmarks;
the distance between the outer lips' keypoints (51, 57) follows the inner-lip opening with r 0.67
(guide alone) / 0.74 (with the mouth loss) per clip; and the trained SyncNet of
benchmarks/pipeline_learning.py finds the audio offset within one frame on 3 / 9 of 12
reconstructions (LSE-C 3.65 / 4.82; real videos 15.4). The guide tells the generator where the lips
are; the mouth loss makes it draw the dark inside of an open mouth there, and the stronger it is the
clearer: over all 44 held-out clips, reconstructions in sync on 57 % with ``mouth_weight`` 10 (5000
steps) and 75 % with 20 (the config), videos generated from audio through the whole pipeline on
50 % and 95 % (benchmarks/pipeline_learning.py). The mouth diagnostic "mouth drawn" printed below
the angle table reads 0.41-0.47 with the mouth options against 0.28 without. Grids of the most open
frames (``mouth_weight`` 10) still show the drawn mouths smaller and paler than the real ones.
On generator-3 data (one thread, seed 0) two more keypoints on the inner lips' middles (62, 66),
the edges of the open mouth's dark inside, raised the PSNR by 0.5 dB and the keypoints' margin from
2.01 to 2.68 dB (table above). Lip sync from audio rose, but stays short of the 60 % asked: in
CI's runs (the same SyncNet, trained alike on the same data) videos from audio in sync on 52 % of
the clips with them against 27 % without, the reconstructions on 20 % against 23 %.
A stronger mouth loss (``mouth_weight`` 40) changed neither the mouth drawn nor the PSNR.

Where the mouth is lost (2026-12-05). Grids of the reconstructions and of the videos from audio of
the config with the expression prior at 5 (before) show no open mouth: where the real mouth opens
dark with teeth, the drawn one is a small dark-red blob whose size barely changes. There the decoder draws every pixel (the image
skip's blending weight is near 0 at the mouth) and it draws it blurred. In the generated videos the
mouth box brightens as stage 1's lips part (r +0.59 per clip, seed 0), where in the real ones it
darkens (r -0.39): the lips move apart, but nothing dark is drawn between them. The
``mouth keypoints`` line below the angle table says why: the distance between the keypoints guided
to the inner lips' middles follows the inner-lip opening with r 0.36, at 0.39 x its spread (the
config before, expression prior 5; seed 1: 0.31, 0.48 x). The estimator reads the opening faintly
from a 64 px frame and shrinks it, so the generator, and stage 2 (trained to reproduce these
keypoints), get little mouth to draw. Tried on that diagnosis (one thread, two runs side by side,
seed 0 unless said; lip sync from audio: benchmarks/pipeline_learning.py with a stage 1 and SyncNet
trained by the slow tests' functions, which judged the config before 59 %):

    run                                               driven / held still (dB)  pitch r  mouth keypoints  lip sync
    expression prior 5 (the config before)            24.43 / 21.75             0.925    r 0.36, 0.39 x   59 %
    the decoder given Gaussian blobs of the driving   24.51 / 21.67             0.933    -                16 % *
      and source keypoints at its 16x16 input (a 1x1  (seed 1: 24.47 / 21.68, pitch 0.855)
      conv from zero; not kept)
    landmark_guide_weight 16 (4)                      stopped at step 2500: driven below held still (22.42 / 23.19 dB,
                                                      seed 1 20.59 / 22.85; the config +1.65 / +1.35 there)
    landmark_guide_shape_weight 16 (the guide's       24.47 / 21.71             0.931    r 0.61, 0.65 x   98 %
      error with its per-frame mean removed)
    expression_weight 1 (the config now)              24.71 / 21.66             0.919    r 0.45, 0.52 x   93 %

    (*: judged by the earlier SyncNet and stage 1, which judged the config before 32 %)

The expression prior (an L1 on every delta, weight 5 in the public recipe) pulled the inner lips'
deltas to zero; at 1 the keypoints carry more of the opening and every criterion of both proofs
passes on CI's seed. The shape term passes them all too (L2K 24.68 dB, keypoint error 0.0544
against 0.2043, yaw r 0.948, reconstructions in sync on 57 %), its keypoints follow the mouth
more closely, but its PSNR margins are smaller (+0.37 / +0.76 dB against +0.62 / +1.05): the
config takes the smaller change. The two together are not measured.

The mouth is still not drawn open (with the prior at 1 the generated mouth box still brightens as
the lips part, r +0.59): SyncNet reads lips that part, not an open mouth. What would draw it: an
estimator that reads the mouth at a higher resolution (or a crop of it), or the public weights,
which read it from 256 px frames.

A later install (2026-12-05, evening). The shipped config again, on a fresh install from the package
registry (the same code, settings and data recipe, but not the same figures as the runs above):
``.ci/run``'s seed 0 (one thread) and this script with ``--seed 1 --threads 1`` (training 3851 s,
beside ``.ci/run``'s renderer lane for its first 30 min and alone after, against 2494 s for the
seed-0 run above beside other jobs: the machine was slower that day, as was the whole ``.ci/run``):

    run                  driven / held still (dB)  SSIM   yaw / pitch r  mouth keypoints  lip sync from audio
    .ci/run, seed 0      25.08 / 21.68             0.788  0.989 / 0.913  r 0.72, 0.65 x   100 % (recon. 91 %)
    seed 1, one thread   24.60 / 21.92             0.768  0.986 / 0.924  r 0.34, 0.58 x   68 % (recon. 41 %)

Every criterion of both proofs passes in both (lip sync judged by ``.ci/run``'s own stage 1 and
SyncNet, reused from its model store; seed 1's pipeline: L2K 24.73 dB against 21.10 / 21.92,
keypoint error 0.0499 against 0.1766, yaw r 0.922, 598 s with ``--threads 2``). In the runs of this
section and the table above, lip sync rises with the mouth keypoints' r (two sets of judges; 0.34:
68 %, 0.45: 93 %, 0.61: 98 %, 0.72: 100 %): seed 1's 68 % passes by 8 points, and its LSE-C in sync
(3.56) is below the shifted audio's (4.01). The full step that day (``benchmarks/renderer_step.py``,
two threads, quiet): 0.593 s median, the pose-only step 0.189 s (0.061-0.12 s on the faster days
above). Across the four runs of the shipped config the PSNR margin is +0.40 to +0.98 dB and the
pitch 0.913 to 0.926: the slow tests assert the issue's thresholds.

With the faster step (channels-last convolutions and fused Adam, see "Step time"; the same maths,
other float rounding), ``.ci/run``'s seed 0 (2026-12-06, training 2977 s at one thread beside the
other lane, against 4157 s the evening before): driven 24.39 / held still 21.71 / source repeated
21.10 dB, SSIM 0.758, yaw / pitch r 0.991 / 0.932; margins +0.29 dB and +0.68 dB. Every renderer
criterion passes, but its mouth does not follow the speech: its reconstructions are in sync on 20 %
of the held-out clips and videos from audio on 11 % (L2K 24.35 dB, keypoint error 0.0564 against
0.1659, yaw r 0.907 all pass). So lip sync from audio holds in some trainings of this config and not
in others, with nothing changed but float rounding: the pipeline script still fails on it, and the
slow test keeps it as an expected failure (tests/test_stage2_learning.py).

The mouth's shape (2026-12-06). The runs above show lip sync rising with how closely the keypoints
guided to the inner lips follow the opening, and that closeness came by chance: the shipped config
scored r 0.72 (100 % of clips in sync from audio) in one training and, with nothing changed but
float rounding, 11 % and 9 % in two more. The guide's squared distance is mostly paid for the guided
points' common error (the head's pose and place, several pixels) and little for their shape (the
opening's spread is 1.7 px). ``landmark_guide_shape_weight`` adds the same distance with each frame's
mean error over the guided points taken out; at 16 (with the expression prior at 5 it had scored
r 0.61 and 98 %, table above) both seeds' inner-lip keypoints follow the opening closely (Status
above: r 0.74 and 0.83) and both pipelines find the audio offset on 91 % and 100 % of the clips, the
reconstructions on 64 % and 82 % (20 % in the 11 % run). The cost is seed 1's pitch (0.873 against
0.924 without it), presumably through the estimator's shared trunk, which the guide's gradient reaches (its angles are set by
the pose losses alone, ``angles_from_pose_losses``), and the pitch, read noisily at 64 px, was
already the closest criterion. The config takes the shape term: lip sync was the criterion that
failed CI's seed, and that seed meets them all with it.

The rotation convention is not the cause: posing each clip's 3D landmarks with its fitted pose
through the keypoint maths reproduces the tracked 2D landmarks to 3 % of the face size, against
12-21 % with yaw, pitch or roll flipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "renderer_small.yaml"
MIN_PSNR_GAIN_DB = 3.0
MIN_KEYPOINT_GAIN_DB = 2.0
MIN_POSE_CORRELATION = 0.9


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/renderer_learning", help="working directory (data, logs)")
    parser.add_argument("--cache-dir", default=None, help="preprocessed mini-MEAD cache (default: built under --out)")
    parser.add_argument("--default-data", action="store_true",
                        help="the default mini-MEAD (heads barely move) instead of free head motion")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=None, help="override the config's training length")
    parser.add_argument("--lpips-weights", default=None, help="torchvision AlexNet weights for LPIPS")
    parser.add_argument("--warp-headroom", action="store_true",
                        help="only print what 2D warps fitted to the true landmarks score (no training)")  # fmt: skip
    parser.add_argument("fit_args", nargs="*",
                        help="more `emoface fit` arguments for an ablation, after --: -- --model.init_args.warp_weight=0")  # fmt: skip
    return parser.parse_args(argv)


def build_cache(root: Path, free_motion: bool = True, speakers: int = 24, size: int = 64, seconds: float = 2.0,
                workers: int = 2, seed: int = 0) -> Path:  # fmt: skip
    """A ``speakers``-actor mini-MEAD preprocessed at ``size`` px (speaker split: two actors held out);
    an existing complete cache is reused.

    ``free_motion`` (the default): heads turn, tilt and move as in VoxCeleb-like free talking (yaw
    within about +-30 deg, pitch +-20, roll +-15, translation and zoom; ``make_mini_mead(free_motion=
    True)``), cropped by the ``track`` crop: motion a keypoint renderer must model. Without it, the
    default mini-MEAD (MEAD's seated, frontal actors), where the heads barely move and "source frame
    repeated" is already close to every frame (built like the evaluators' cache).
    """
    from emoface.datamodules import MEADDataModule
    from emoface.datamodules.mini_mead import free_motion_frame_size, make_mini_mead

    raw, cache = root / "raw", root / "cache"
    if not (cache / "manifest.csv").is_file():
        if not (raw / "mini_mead.json").is_file():
            frame_size = free_motion_frame_size(size) if free_motion else 2 * round(0.75 * size)
            make_mini_mead(raw, speakers=speakers, clips=1, seconds=seconds, size=frame_size, seed=seed,
                           workers=workers, free_motion=free_motion)  # fmt: skip
        MEADDataModule(cache_dir=str(cache), raw_root=str(raw), size=size, preprocess_workers=workers).prepare_data()
    return cache


def train(cache: Path, root: Path, seed: int, max_steps: int | None = None, fit_args: Sequence[str] = ()) -> Path:
    """``emoface fit --config configs/renderer_small.yaml`` on ``cache`` (``fit_args``: more of its
    arguments); returns the last checkpoint."""
    from emoface.cli import main as emoface_main

    args = [
        "fit", "--config", str(CONFIG),
        "--seed_everything", str(seed),
        "--data.init_args.cache_dir", str(cache),
        "--trainer.default_root_dir", str(root),
        "--trainer.logger.init_args.save_dir", str(root),
        "--trainer.callbacks.init_args.dirpath", str(root / "checkpoints"),
        "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip
    if max_steps is not None:
        args += ["--trainer.max_steps", str(max_steps)]
    emoface_main([*args, *fit_args])
    return root / "checkpoints" / "last.ckpt"


def held_out_loader(cache: Path, fields: tuple[str, ...] = ("frames", "pose", "source_frame")) -> Any:
    """Whole clips (one per batch) of the speaker split's validation and test actors, with their
    first frame as the source."""
    from emoface.datamodules import MEADDataModule

    fields = list(fields)
    split = MEADDataModule(cache_dir=str(cache), fields=fields).split_entries()
    held_out = sorted({e.actor for e in split["val"] + split["test"]})
    dm = MEADDataModule(cache_dir=str(cache), fields=fields, test_actors=held_out)
    dm.setup("predict")
    return held_out, dm.predict_dataloader()


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def untrained(checkpoint: Path) -> Any:
    """A renderer with the trained one's sizes and a fresh random initialisation (the floor)."""
    from emoface.lightning_modules import FaceRenderer

    torch.manual_seed(0)
    system = FaceRenderer.load_from_checkpoint(checkpoint, map_location="cpu", perceptual_backbone=None)
    for module in system.modules():
        if module is not system and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return system


def evaluate(system_or_checkpoint: Any, cache: Path, lpips_weights: str | None = None, batch_size: int = 16) -> dict[str, Any]:
    """Scores of a renderer (a ``FaceRenderer`` or its checkpoint) and of the "source frame
    repeated" baseline on held-out actors."""
    from emoface.geometry.landmarks import MOUTH, region_box_masks
    from emoface.io.weights import MissingWeightsError
    from emoface.lightning_modules import FaceRenderer
    from emoface.metrics import LPIPS, PSNR, SSIM
    from emoface.rendering import FaceVid2VidRenderer

    system = system_or_checkpoint
    if not isinstance(system, FaceRenderer):
        system = FaceRenderer.load_from_checkpoint(system, map_location="cpu", perceptual_backbone=None)
    renderer = FaceVid2VidRenderer(system.kp_detector, system.he_estimator, system.generator, batch_size=batch_size)
    metrics: dict[str, dict[str, Any]] = {"renderer": {}, "source repeated": {}, "held still": {}}
    for row in metrics.values():
        row.update(psnr=PSNR(), ssim=SSIM())
        try:
            row["lpips"] = LPIPS(backbone_weights=lpips_weights)
        except MissingWeightsError as error:
            row["lpips"] = None
            lpips_missing = str(error)
    actors, loader = held_out_loader(cache, ("frames", "pose", "source_frame", "landmarks"))
    mouth: dict[str, list[torch.Tensor]] = {"expression": [], "opening": [], "keypoints": []}
    # Guided keypoints on both inner lips' middles: their distance is the renderer's mouth opening.
    guided = list(system.hparams.landmark_guide_points) if system.hparams.landmark_guide_weight else []
    inner_lips = (guided.index(62), guided.index(66)) if {62, 66} <= set(guided) else None
    brightness_correlations: list[float] = []  # per clip: does the drawn mouth darken as the real one?
    angles: dict[str, list[torch.Tensor]] = {"yaw": [], "pitch": [], "roll": [], "yaw_true": [], "pitch_true": [], "roll_true": []}
    clips = frames_total = 0
    for batch in loader:
        frames = batch["frames"][0]  # (T, 3, H, W) uint8
        # renderer.reconstruct's steps, each once: the estimate and keypoints serve the diagnostics too.
        source = renderer.prepare_source(batch["source_frame"][0])
        estimate = renderer.estimate_driving(frames)
        kp_driving = renderer.driving_keypoints(source, **estimate)  # (T, K, 3)
        prediction = renderer.render(source, kp_driving)
        # The same renderer driven by the source's own keypoints held still: what it draws when the
        # keypoints are ignored. A warp that follows the keypoints must beat it by a wide margin.
        held = renderer.render(source, source.kp_source.expand(frames.shape[0], -1, -1))
        mouth["expression"].append(estimate["exp"].flatten(1))  # (T, 3K) keypoint deltas
        mouth["opening"].append(FaceRenderer.mouth_opening(batch, frames.shape[-1]))  # (T,) inner lips
        if inner_lips is not None:
            lips = kp_driving[:, list(inner_lips), :2]  # (T, 2, 2)
            mouth["keypoints"].append((lips[:, 1] - lips[:, 0]).norm(dim=-1))  # grid units, as the opening
        boxes = region_box_masks(batch["landmarks"][0, 1:], MOUTH, *frames.shape[-2:])  # (T-1, 1, H, W)
        real, drawn = (
            (video.float() * boxes).sum((1, 2, 3)) / boxes.sum((1, 2, 3)).clamp_min(1.0)
            for video in (frames[1:].float().div(255), prediction[1:])
        )
        brightness_correlations.append(pearson(drawn, real))
        for k, name in enumerate(("yaw", "pitch", "roll")):
            angles[name].append(estimate[name])
            angles[f"{name}_true"].append(batch["euler"][0, :, k])
        # Frame 0 is the source itself (a perfect baseline there): scored are frames 1..T-1.
        target = frames[1:].float().div(255).unsqueeze(0)
        repeated = batch["source_frame"].float().div(255).unsqueeze(1).expand_as(target)
        videos = ((metrics["renderer"], prediction[1:].unsqueeze(0)), (metrics["source repeated"], repeated),
                  (metrics["held still"], held[1:].unsqueeze(0)))  # fmt: skip
        for row, video in videos:
            for metric in row.values():
                if metric is not None:
                    metric.update(video, target)
        clips += 1
        frames_total += target.shape[1]
    result: dict[str, Any] = {"actors": actors, "clips": clips, "frames": frames_total}
    for method, row in metrics.items():
        result[method] = {name: (None if m is None else float(m.compute())) for name, m in row.items()}
    for name in ("yaw", "pitch", "roll"):
        estimated, true = torch.cat(angles[name]), torch.cat(angles[f"{name}_true"])
        result[f"{name}_correlation"] = pearson(estimated, true)
        result[f"{name}_mae"] = float((estimated - true).abs().mean())
        result[f"{name}_std_true"] = float(true.std())
    # Does any keypoint move with the mouth? The renderer can open a mouth only through the
    # estimator's expression deltas (diagnostic, not a criterion: lip sync is judged on the pipeline).
    expression, opening = torch.cat(mouth["expression"]), torch.cat(mouth["opening"])
    correlations = [abs(pearson(expression[:, k], opening)) for k in range(expression.shape[1])]
    result["mouth_expression_correlation"] = max(correlations)
    result["mouth_expression_component"] = int(np.argmax(correlations))
    result["mouth_brightness_correlation"] = float(np.nanmean(brightness_correlations))
    if mouth["keypoints"]:
        keypoints = torch.cat(mouth["keypoints"])
        result["mouth_keypoints_correlation"] = pearson(keypoints, opening)
        result["mouth_keypoints_std_ratio"] = float(keypoints.std() / opening.std())
    if metrics["renderer"]["lpips"] is None:
        result["lpips_note"] = lpips_missing
    return result


def warp_headroom(cache: Path, every: int = 3) -> dict[str, float]:
    """Mean PSNR (dB) on the held-out clips of each clip's first frame warped onto every ``every``-th
    frame by a 2D transform fitted to preprocessing's landmarks of the two frames (scikit-image's
    similarity, affine, and piecewise-affine transforms; the crop's corners follow the similarity
    for the piecewise one), and of the first frame unwarped: how much a warp that follows the face
    can gain over the still source, without training anything."""
    from skimage import transform
    from skimage.metrics import peak_signal_noise_ratio

    def psnr(prediction: np.ndarray, target: np.ndarray) -> float:
        return float(peak_signal_noise_ratio(target, prediction, data_range=1.0))

    scores: dict[str, list[float]] = {"source repeated": [], "similarity": [], "affine": [], "piecewise affine": []}
    for batch in held_out_loader(cache, fields=("frames", "landmarks", "source_frame"))[1]:
        frames = batch["frames"][0].permute(0, 2, 3, 1).float().div(255).numpy()  # (T, H, W, 3)
        points = batch["landmarks"][0, :, :, :2].numpy()  # (T, 68, 2) crop pixels
        h, w = frames.shape[1:3]
        corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], dtype=np.float64)
        for t in range(1, len(frames), every):
            source, target = frames[0], frames[t]
            scores["source repeated"].append(psnr(source, target))
            # Each transform maps the target frame's points to the source's (warp's inverse map).
            similarity = transform.SimilarityTransform.from_estimate(points[t], points[0])
            affine = transform.AffineTransform.from_estimate(points[t], points[0])
            piecewise = transform.PiecewiseAffineTransform.from_estimate(
                np.vstack([points[t], corners]), np.vstack([points[0], similarity(corners)])
            )
            for name, fitted in (("similarity", similarity), ("affine", affine), ("piecewise affine", piecewise)):
                scores[name].append(psnr(transform.warp(source, fitted, mode="edge"), target))
    return {name: float(np.mean(values)) for name, values in scores.items()}


def table(result: dict[str, Any]) -> str:
    def fmt(value: float | None, digits: int) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    lines = [
        f"held-out actors {', '.join(result['actors'])}: {result['clips']} clips, {result['frames']} frames, "
        "each driving frame reconstructed from its clip's first frame",
        "",
        "| method | PSNR (dB) | SSIM | LPIPS |",
        "|---|---|---|---|",
    ]
    rows = [("source frame repeated", result["source repeated"]),
            ("renderer, driven by the source's keypoints held still", result["held still"]),
            ("renderer (trained), driven by each frame's keypoints", result["renderer"])]  # fmt: skip
    if "untrained" in result:
        rows.insert(0, ("renderer, untrained (random init)", result["untrained"]))
    for method, row in rows:
        lines.append(f"| {method} | {fmt(row['psnr'], 2)} | {fmt(row['ssim'], 3)} | {fmt(row['lpips'], 3)} |")
    lines += ["", "| angle | correlation with preprocessing | MAE (deg) | real std (deg) |", "|---|---|---|---|"]
    for name in ("yaw", "pitch", "roll"):
        lines.append(f"| {name} | {result[f'{name}_correlation']:.3f} | {result[f'{name}_mae']:.2f} | "
                     f"{result[f'{name}_std_true']:.2f} |")  # fmt: skip
    if "mouth_expression_correlation" in result:
        keypoint, axis = divmod(result["mouth_expression_component"], 3)
        lines += ["", f"mouth: of the estimator's expression deltas, the one that follows the inner-lip opening "
                  f"(landmarks 62 to 66) best (keypoint {keypoint}, {'xyz'[axis]}) correlates "
                  f"|r| {result['mouth_expression_correlation']:.3f} with it (0.14 for the renderer that drew no mouth motion; "
                  "guided keypoints move with the lips through their posed places, not one delta)"]  # fmt: skip
    if "mouth_brightness_correlation" in result:
        lines.append(f"mouth drawn: the reconstruction's mouth box (landmarks 48 to 67) brightens and darkens with the "
                     f"driving frame's (an open mouth is dark inside) with r {result['mouth_brightness_correlation']:.3f} "
                     "(mean over clips); a renderer that drew every mouth as in its source scored 0.28, from the "
                     "head's motion alone")  # fmt: skip
    if "mouth_keypoints_correlation" in result:
        lines.append(f"mouth keypoints: the distance between the keypoints guided to the inner lips' middles (62, 66), "
                     f"as the estimator poses them, follows the inner-lip opening with r "
                     f"{result['mouth_keypoints_correlation']:.3f} and {result['mouth_keypoints_std_ratio']:.2f} x its "
                     "spread: what the generator, and stage 2 trained on these keypoints, learn of the mouth")  # fmt: skip
    if "lpips_note" in result:
        lines += ["", f"LPIPS n/a: {result['lpips_note']}"]
    return "\n".join(lines)


def criteria(result: dict[str, Any]) -> list[tuple[str, bool]]:
    ours, base, held = result["renderer"], result["source repeated"], result["held still"]
    checks = [
        (f"PSNR >= source repeated + {MIN_PSNR_GAIN_DB:g} dB ({ours['psnr']:.2f} vs {base['psnr']:.2f}; margin "
         f"{ours['psnr'] - base['psnr'] - MIN_PSNR_GAIN_DB:+.2f} dB)", ours["psnr"] >= base["psnr"] + MIN_PSNR_GAIN_DB),
        (f"SSIM above source repeated ({ours['ssim']:.3f} vs {base['ssim']:.3f})", ours["ssim"] > base["ssim"]),
        (f"keypoints matter: PSNR driven >= held still + {MIN_KEYPOINT_GAIN_DB:g} dB ({ours['psnr']:.2f} vs "
         f"{held['psnr']:.2f}; margin {ours['psnr'] - held['psnr'] - MIN_KEYPOINT_GAIN_DB:+.2f} dB)",
         ours["psnr"] >= held["psnr"] + MIN_KEYPOINT_GAIN_DB),
    ]  # fmt: skip
    if ours["lpips"] is not None:
        checks.append((f"LPIPS below source repeated ({ours['lpips']:.3f} vs {base['lpips']:.3f})",
                       ours["lpips"] < base["lpips"]))  # fmt: skip
    for name in ("yaw", "pitch"):
        value = result[f"{name}_correlation"]
        checks.append((f"{name} correlation >= {MIN_POSE_CORRELATION:g} ({value:.3f})", value >= MIN_POSE_CORRELATION))
    return checks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    start = time.time()
    cache = Path(args.cache_dir) if args.cache_dir else build_cache(out / ("data" if args.default_data else "data-free-motion"), free_motion=not args.default_data)
    if args.warp_headroom:
        print("held-out clips' first frame warped onto every third frame by 2D transforms fitted to the true landmarks:")
        for name, value in warp_headroom(cache).items():
            print(f"  {name}: {value:.2f} dB")
        return 0
    built = time.time()
    checkpoint = train(cache, out / "run", args.seed, args.max_steps, args.fit_args)
    trained = time.time()
    result = evaluate(checkpoint, cache, args.lpips_weights)
    result["untrained"] = evaluate(untrained(checkpoint), cache, args.lpips_weights)["renderer"]
    print(table(result))
    print(f"\ntimes: cache {built - start:.0f} s, training {trained - built:.0f} s, evaluation {time.time() - trained:.0f} s")
    failed = 0
    for text, ok in criteria(result):
        print(f"[{'pass' if ok else 'FAIL'}] {text}")
        failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
