"""The built-in synthetic mixed-emotion data set, written in DMER's feature-file format.

A generative model with real, learnable structure (see ``docs/synthetic-data.md``):

* every clip has a stimulus affect ``mu_j = (p, n, a)`` (positive activation, negative
  activation, arousal) set by its category: positive, negative or mixed (both activations up);
* a subject experiences ``mu_j`` plus an individual reaction, drifting within the clip as an
  AR(1) process, second by second;
* the 10 PANAS ratings of a clip are 1-5 integers driven by the clip-mean experienced affect
  through item loadings (items co-occur within a valence group, oppose across groups), with
  per-item intercepts, per-subject item biases, per-rating noise and a per-subject rating style;
* features are computed from the second-by-second affect: physiology mostly reflects arousal
  (and fear-like negative activation), the face mostly reflects valence, EEG a little of both,
  each with per-subject offsets and gains and realistic feature forms.

``generate_synthetic_dmer`` writes the files; :class:`SyntheticDMERDataModule` generates them
on first use (atomically) and loads them through the DMER loader.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.io
from scipy.signal import lfilter

from datamodules.data_size import DataSize
from datamodules.dmer import DMER_VALID_SUBJECTS, NUM_CLIPS, DMERDataModule, clip_category
from datamodules.modality_mask import ModalityMasking
from datamodules.protocols import DEFAULT_SEED
from datamodules.synthetic_features import (
    GSR_HZ,
    LBP_BINS,
    LBP_PLANES,
    PPG_HZ,
    WINDOW_S,
    eeg_differential_entropy,
    eeg_maps,
    gsr_features,
    gsr_signal,
    lbp_top_histograms,
    ppg_features,
    ppg_signal,
    sliding_windows,
    uniform_lbp_patterns,
    upsample,
)
from datamodules.table import FeatureTable

#: Bumped whenever the generated data change, so that stale caches are never reused.
GENERATOR_VERSION = 1
MANIFEST = "synthetic.json"
#: Pre-roll seconds before a clip's first window: lets the skin-conductance filters settle.
BURN_IN_S = 8

#: Stimulus affect (p, n, a) by clip category: positive, negative, mixed.
CATEGORY_AFFECT = np.array([[1.2, -1.0, 0.0], [-1.0, 1.2, 0.0], [0.6, 0.6, 0.0]])
#: Spread of the clips' affect around their category's, per latent (arousal varies most).
STIMULUS_SD = np.array([0.3, 0.3, 0.8])
#: Spread of a subject's reaction to a clip around the clip's stimulus affect.
REACTION_SD = 0.45
#: Within-clip AR(1) drift of the experienced affect: per-second coefficient and stationary sd.
DRIFT_PHI = 0.85
DRIFT_SD = np.array([0.4, 0.4, 0.5])
#: PANAS item loadings on (p, n, a), in DMER's item order; scaled by RATING_SCALE.
ITEM_LOADINGS = np.array(
    [
        [1.0, -0.2, -0.1],  # Inspired
        [0.5, 0.1, 0.8],  # Alert
        [0.9, -0.2, 0.6],  # Excited
        [1.0, -0.2, 0.3],  # Enthusiastic
        [0.7, 0.0, 0.2],  # Determined
        [-0.2, 0.8, 0.6],  # Afraid
        [-0.3, 1.0, -0.2],  # Upset
        [-0.1, 0.7, 0.7],  # Nervous
        [-0.2, 0.9, 0.6],  # Scared
        [-0.2, 1.0, 0.1],  # Distressed
    ]
)
ITEM_INTERCEPTS = np.array([-1.0, -0.6, -1.0, -1.0, -1.2, -1.0, -1.0, -0.9, -1.1, -1.0])
RATING_SCALE = 1.5
ITEM_BIAS_SD = 0.3
RATING_NOISE_SD = 0.35
#: Face expression loadings per plane (XY appearance, XT and YT motion) on (p, n, a).
FACE_PLANE_SCALES = np.array([[0.6, 0.2, 0.0], [0.3, 0.1, 0.05], [0.3, 0.1, 0.05]])
FACE_CODES_PER_LATENT = 24
FACE_IDENTITY_SD = 0.25
#: Per-clip head pose / lighting offsets of the face code logits.
FACE_POSE_SD = 0.1
#: Per-clip step of the session random walks (log scale).
SESSION_STEP_SD = 0.05
#: Relative per-subject perturbation of the EEG and face loading maps.
RESPONSE_SPECIFICITY = 0.3


def _shared_parameters(seed: int) -> dict[str, np.ndarray]:
    """What every subject shares: the clips' stimulus affect and the face code maps."""
    rng = np.random.default_rng([seed, 0])
    category = clip_category(np.arange(NUM_CLIPS))
    stimulus = CATEGORY_AFFECT[category] + rng.normal(0.0, 1.0, (NUM_CLIPS, 3)) * STIMULUS_SD
    uniform = uniform_lbp_patterns()
    base = np.where(uniform, rng.normal(2.0, 0.5, (LBP_PLANES, LBP_BINS)), -0.5)
    base += rng.normal(0.0, 0.5, (LBP_PLANES, LBP_BINS)) * ~uniform
    # Expressions move mass among a few codes per plane and latent, mostly uniform (edge) codes.
    weights = np.where(uniform, 4.0, 1.0) / np.where(uniform, 4.0, 1.0).sum()
    expression = np.zeros((3, LBP_PLANES, LBP_BINS))
    for plane in range(LBP_PLANES):
        for latent in range(3):
            codes = rng.choice(LBP_BINS, FACE_CODES_PER_LATENT, replace=False, p=weights)
            scale = FACE_PLANE_SCALES[plane, latent]
            expression[latent, plane, codes] = scale * rng.normal(0.0, 1.0, len(codes))
    return {"stimulus": stimulus, "face_base": base, "face_expression": expression}


def _experienced_affect(stimulus: np.ndarray, seconds: int, rng: np.random.Generator) -> np.ndarray:
    """Per-second affect ``[J, seconds, 3]``: ``z_t = mu_j + delta_sj + u_t``, ``u`` AR(1).

    ``u_t = phi u_{t-1} + sqrt(1 - phi^2) sd e_t`` started from its stationary law.
    """
    reaction = stimulus + rng.normal(0.0, REACTION_SD, stimulus.shape)
    innovations = rng.normal(0.0, 1.0, (NUM_CLIPS, seconds, 3))
    innovations[:, 0] /= np.sqrt(1.0 - DRIFT_PHI**2)  # u_0 ~ N(0, sd^2): stationary start
    scale = np.sqrt(1.0 - DRIFT_PHI**2) * DRIFT_SD
    drift = lfilter([1.0], [1.0, -DRIFT_PHI], innovations, axis=1) * scale
    return reaction[:, None, :] + drift


def _ratings(clip_affect: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """PANAS ratings ``[J, 10]`` in 1..5 from the clip-mean experienced affect ``[J, 3]``.

    ``eta = kappa + s * Lambda z + beta_s + eps``; ``r = round(1 + 4 sigmoid(b_s + g_s eta))``.
    """
    item_bias = rng.normal(0.0, ITEM_BIAS_SD, len(ITEM_INTERCEPTS))
    offset, gain = rng.normal(0.0, 0.5), rng.lognormal(0.0, 0.3)
    eta = (
        ITEM_INTERCEPTS
        + RATING_SCALE * clip_affect @ ITEM_LOADINGS.T
        + item_bias
        + rng.normal(0.0, RATING_NOISE_SD, (len(clip_affect), len(ITEM_INTERCEPTS)))
    )
    continuous = 1.0 + 4.0 / (1.0 + np.exp(-(offset + gain * eta)))
    return np.round(continuous)


def _individual(loadings: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A subject's own version of shared loadings: ``g_s * M * (1 + RESPONSE_SPECIFICITY e)``.

    ``g_s`` is an overall reactivity and the elementwise factor models individual response
    specificity (the same feeling shows in somewhat different features in different people).
    """
    factor = 1.0 + RESPONSE_SPECIFICITY * rng.normal(0.0, 1.0, loadings.shape)
    return rng.lognormal(0.0, 0.25) * loadings * factor


def _session_drift(order: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-clip nuisance of one recording session, indexed by clip id.

    Slow drifts over the presentation order (random walks: dry-electrode impedance per EEG
    channel, skin-conductance level, PPG sensor contact) and per-clip head pose and lighting
    offsets of the face codes. They carry no affect, but make each clip of a subject
    recognisable, as in real recordings.
    """
    steps = rng.normal(0.0, SESSION_STEP_SD, (NUM_CLIPS, 18 + 2))
    walk = np.cumsum(steps, axis=0)  # walk[k]: state during the k-th presented clip
    by_clip = np.empty_like(walk)
    by_clip[order] = walk
    return {
        "eeg": by_clip[:, :18],
        "gsr": np.exp(by_clip[:, 18]),
        "ppg": np.exp(by_clip[:, 19]),
        "face": rng.normal(0.0, FACE_POSE_SD, (NUM_CLIPS, LBP_PLANES, LBP_BINS)),
    }


def synthesize_subject(
    subject: int, rows_per_clip: int, seed: int, shared: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """One subject's DMER-format arrays: ``feas`` (float32), ``vids`` and ``dis_label``.

    Deterministic in ``(seed, subject, rows_per_clip)``: subjects do not depend on each other,
    so the first subjects of a 73-subject set equal those of a 12-subject set.
    """
    shared = _shared_parameters(seed) if shared is None else shared
    rng = np.random.default_rng([seed, 1, subject])
    seconds = BURN_IN_S + rows_per_clip + WINDOW_S - 1
    z = _experienced_affect(shared["stimulus"], seconds, rng)
    labels = _ratings(z[:, BURN_IN_S:].mean(axis=1), rng)

    # Clips appear in the subject's own presentation order, rows in time order within a clip.
    order = rng.permutation(NUM_CLIPS)
    session = _session_drift(order, rng)

    # EEG and face windows are the last second of each 5-s peripheral window.
    row_seconds = slice(BURN_IN_S + WINDOW_S - 1, BURN_IN_S + WINDOW_S - 1 + rows_per_clip)
    z_rows = z[:, row_seconds]
    eeg_base_offset = rng.normal(0.0, 0.3, (18, 1)) + rng.normal(0.0, 0.25, (1, 5))
    eeg = eeg_differential_entropy(
        z_rows,
        offset=eeg_base_offset + session["eeg"][:, None, :, None],
        loads=_individual(eeg_maps()[1], rng),
        rng=rng,
    )
    gsr = gsr_signal(
        upsample(z, GSR_HZ),
        level=rng.lognormal(np.log(4.0), 0.5) * session["gsr"][:, None],
        responsivity=rng.lognormal(0.0, 0.5),
        rng=rng,
    )
    ppg = ppg_signal(
        upsample(z, PPG_HZ),
        heart_rate=float(np.clip(rng.normal(72.0, 7.0), 50.0, 100.0)),
        reactivity=rng.lognormal(0.0, 0.3),
        amplitude=rng.lognormal(0.0, 0.4) * session["ppg"][:, None],
        breathing_hz=rng.uniform(0.2, 0.33),
        rng=rng,
    )
    identity = rng.normal(0.0, FACE_IDENTITY_SD, (LBP_PLANES, LBP_BINS))
    face = lbp_top_histograms(
        z_rows,
        offset=shared["face_base"] + identity + session["face"][:, None],
        expression=_individual(shared["face_expression"], rng),
        rng=rng,
    )
    features = np.concatenate(
        [
            eeg.reshape(NUM_CLIPS, rows_per_clip, -1),
            gsr_features(sliding_windows(gsr, GSR_HZ, BURN_IN_S, rows_per_clip)),
            ppg_features(sliding_windows(ppg, PPG_HZ, BURN_IN_S, rows_per_clip)),
            face,
        ],
        axis=-1,
    )
    return {
        "feas": features[order].reshape(-1, features.shape[-1]).astype(np.float32),
        "vids": np.repeat(order, rows_per_clip).astype(np.float64)[:, None],
        "dis_label": labels,
    }


def generate_synthetic_dmer(
    root: str | os.PathLike[str], num_subjects: int = 12, rows_per_clip: int = 24, seed: int = 0
) -> list[Path]:
    """Write a synthetic data set in the DMER feature format: ``<root>/<subject_id>.mat``.

    Args:
        root: Output folder (created if needed).
        num_subjects: Number of subjects, 1..73; ids are the first valid DMER ids.
        rows_per_clip: 1-s rows per clip (all 32 clips).
        seed: Seed of everything random; the same seed writes the same data.

    Returns:
        The written files, in subject order. Each is written to a temporary name first and then
        renamed, so a file that exists is complete.
    """
    if not 1 <= num_subjects <= len(DMER_VALID_SUBJECTS):
        raise ValueError(
            f"num_subjects must be in 1..{len(DMER_VALID_SUBJECTS)}, got {num_subjects}"
        )
    if rows_per_clip < 1:
        raise ValueError(f"rows_per_clip must be >= 1, got {rows_per_clip}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    shared = _shared_parameters(seed)
    paths = []
    for subject in DMER_VALID_SUBJECTS[:num_subjects]:
        arrays = synthesize_subject(subject, rows_per_clip, seed, shared)
        path = root / f"{subject}.mat"
        tmp = root / f".{subject}.mat.tmp"
        with open(tmp, "wb") as handle:
            scipy.io.savemat(handle, arrays, do_compression=False)
        os.replace(tmp, path)
        paths.append(path)
    return paths


def default_synthetic_root() -> Path:
    """``$MPCL_DATA_DIR/synthetic`` if the variable is set, else ``data/synthetic`` in the CWD."""
    return Path(os.environ.get("MPCL_DATA_DIR", "data")) / "synthetic"


class SyntheticDMERDataModule(DMERDataModule):
    """The built-in synthetic mixed-emotion data set (DMER feature format), generated on demand.

    The files live in ``<root>/s{num_subjects}-r{rows_per_clip}-seed{data_seed}-v{version}/``:
    one cached data set per parameter set and generator version. :meth:`prepare_data` writes
    them into a temporary folder and renames it into place, so a crashed run never leaves half a
    data set and concurrent processes cannot read one.

    Args:
        num_subjects: Number of synthetic subjects (1..73; DMER's first valid ids).
        rows_per_clip: 1-s rows per clip.
        data_seed: Seed of the generator.
        root: Cache folder of the generated data sets (default :func:`default_synthetic_root`).
        modalities: See :class:`~datamodules.dmer.DMERDataModule`.
        protocol: See :class:`~datamodules.base.FeatureDataModule`.
        fold: See :class:`~datamodules.base.FeatureDataModule`.
        num_folds: See :class:`~datamodules.base.FeatureDataModule`.
        val_fraction: See :class:`~datamodules.base.FeatureDataModule`.
        batch_size: See :class:`~datamodules.base.FeatureDataModule`.
        eval_batch_size: See :class:`~datamodules.base.FeatureDataModule`.
        standardize: See :class:`~datamodules.base.FeatureDataModule`.
        subject_standardize: See :class:`~datamodules.base.FeatureDataModule`.
        split_seed: See :class:`~datamodules.base.FeatureDataModule`.
        shuffle_seed: See :class:`~datamodules.base.FeatureDataModule`.
        split_file: See :class:`~datamodules.base.FeatureDataModule`.
        masking: See :class:`~datamodules.base.FeatureDataModule`.
        data_size: See :class:`~datamodules.base.FeatureDataModule`.
        predict_root: See :class:`~datamodules.dmer.DMERDataModule`.
        split_rng: See :class:`~datamodules.base.FeatureDataModule`.
        validate_on_test: See :class:`~datamodules.base.FeatureDataModule`.
        scoring: See :class:`~datamodules.base.FeatureDataModule`.
    """

    dataset_name = "synthetic"

    def __init__(
        self,
        num_subjects: int = 12,
        rows_per_clip: int = 24,
        data_seed: int = 0,
        root: str | None = None,
        modalities: list[str] | None = None,
        protocol: Literal["random-window", "temporal", "clip-holdout", "loso", "kfold"] = "kfold",
        fold: int = 0,
        num_folds: int = 5,
        val_fraction: float = 0.1,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        standardize: bool = True,
        subject_standardize: bool = False,
        split_seed: int = DEFAULT_SEED,
        shuffle_seed: int = 0,
        split_file: str | None = None,
        predict_root: str | None = None,
        masking: ModalityMasking | None = None,
        data_size: DataSize | None = None,
        split_rng: Literal["numpy", "torch"] = "numpy",
        validate_on_test: bool = False,
        scoring: Literal["all", "first-per-batch"] = "all",
    ) -> None:
        if not 1 <= num_subjects <= len(DMER_VALID_SUBJECTS):
            raise ValueError(
                f"num_subjects must be in 1..{len(DMER_VALID_SUBJECTS)}, got {num_subjects}"
            )
        if rows_per_clip < 1:
            raise ValueError(f"rows_per_clip must be >= 1, got {rows_per_clip}")
        cache = Path(root) if root is not None else default_synthetic_root()
        name = f"s{num_subjects}-r{rows_per_clip}-seed{data_seed}-v{GENERATOR_VERSION}"
        self.data_dir = (cache / name).absolute()
        super().__init__(
            root=str(self.data_dir),
            subjects=list(DMER_VALID_SUBJECTS[:num_subjects]),
            modalities=modalities,
            protocol=protocol,
            fold=fold,
            num_folds=num_folds,
            val_fraction=val_fraction,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            standardize=standardize,
            subject_standardize=subject_standardize,
            split_seed=split_seed,
            shuffle_seed=shuffle_seed,
            split_file=split_file,
            split_rng=split_rng,
            validate_on_test=validate_on_test,
            scoring=scoring,
            predict_root=predict_root,
            masking=masking,
            data_size=data_size,
        )
        self.num_subjects = num_subjects
        self.rows_per_clip = rows_per_clip
        self.data_seed = data_seed

    def _is_complete(self) -> bool:
        return (self.data_dir / MANIFEST).is_file()

    def prepare_data(self) -> None:
        """Generate the data set unless a complete copy is cached (safe to call concurrently)."""
        if self._is_complete():
            return
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.data_dir.name}.", dir=self.data_dir.parent))
        try:
            paths = generate_synthetic_dmer(
                tmp, self.num_subjects, self.rows_per_clip, self.data_seed
            )
            manifest = {
                "generator": __name__,
                "version": GENERATOR_VERSION,
                "num_subjects": self.num_subjects,
                "rows_per_clip": self.rows_per_clip,
                "seed": self.data_seed,
                "files": [p.name for p in paths],
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            try:
                os.rename(tmp, self.data_dir)
            except OSError:
                # Another process won the race (fine), or a foreign folder is in the way.
                if not self._is_complete():
                    raise OSError(
                        f"{self.data_dir}: exists but holds no complete synthetic data set "
                        f"(no {MANIFEST}); remove it or choose another root"
                    ) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def load_table(self) -> FeatureTable:
        """Generate the files if needed (outside Lightning), then read them as DMER files."""
        self.prepare_data()
        return super().load_table()
