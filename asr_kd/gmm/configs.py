"""The GMM-HMM systems' configs (config sections ``mono:``, ``tri1:``, ``tri2:``), and the name a
saved model records its config class by."""

from dataclasses import dataclass
from typing import Dict, Tuple


@dataclass
class MonoConfig:
    num_iters: int = 25
    max_iter_inc: int = 18  # Gaussians grow until this iteration
    total_gauss: int = 1000
    realign_iters: Tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 23)
    beam: float = 10.0
    retry_beam: float = 40.0
    acoustic_scale: float = 0.1
    transition_scale: float = 1.0
    self_loop_scale: float = 0.1
    power: float = 0.25  # Gaussians per pdf ~ occupancy^power
    min_gaussian_occupancy: float = 3.0
    perturb_factor: float = 0.01
    num_cepstra: int = 13
    use_deltas: bool = True
    utterance_cmvn: bool = False  # cepstral mean/variance normalisation per utterance (channels differ per utterance)
    seed: int = 3  # equal alignment picks a random path among equal-length ones
    # Flat start: "equal" is Kaldi's (frames shared equally along a random graph path, the
    # silences included); "vad" first finds the speech by frame energy, gives the frames
    # outside it to SIL and shares the speech frames equally among the states of the
    # transcript's phones (first pronunciation). "vad" avoids models that settle shifted
    # into the neighbouring phone when leading/trailing silences are long.
    flat_start: str = "vad"
    vad_min_range: float = 3.0  # utterances whose log-energy range (p95 - p10) is smaller are left out of pass 0


@dataclass
class TriConfig(MonoConfig):
    """A triphone system; the MonoConfig fields keep their meaning (flat-start ones are unused)."""

    num_iters: int = 35
    max_iter_inc: int = 25
    total_gauss: int = 4000
    realign_iters: Tuple[int, ...] = (10, 20, 30)
    use_deltas: bool = True  # tri1: cepstra + deltas
    num_leaves: int = 500
    min_leaf_count: float = 100.0  # frames on each side of a tree split
    cluster_thresh: float = -1.0  # leaf merging after splitting (-1: the last split's gain; 0: none)
    extra_questions: Tuple[Tuple[str, ...], ...] = ()  # phone-symbol sets asked besides the clustered ones
    splice: int = 0  # > 0: tri2 (LDA+MLLT) on static cepstra spliced over +-splice frames
    lda_dim: int = 40
    mllt_iters: Tuple[int, ...] = (2, 4, 6, 12)


CONFIG_CLASSES: Dict[str, type] = {"MonoConfig": MonoConfig, "TriConfig": TriConfig}
