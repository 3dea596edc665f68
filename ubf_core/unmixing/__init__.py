"""Scene-based unmixing: the network (encoder → softmax abundances, linear-mixing decoder) and its losses.

Submodules with heavier dependencies (``figures``, ``training``, ``inputs``, ``abundance_store``, ``saved``: the
model on disk) are imported by name, not from here, as is ``baseline``: the classical VCA endmembers + FCLS abundances
the network is compared against.
"""

from ubf_core.unmixing.losses import UnmixingLoss, endmember_tv, mae, sad_loss, spectral_angle
from ubf_core.unmixing.network import LinearMixingDecoder, RSABlock, UnmixingEncoder, UnmixingNet

__all__ = [
    "RSABlock",
    "UnmixingEncoder",
    "LinearMixingDecoder",
    "UnmixingNet",
    "UnmixingLoss",
    "mae",
    "spectral_angle",
    "sad_loss",
    "endmember_tv",
]
