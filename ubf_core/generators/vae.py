"""A compact convolutional variational autoencoder of abundance maps (the UBF paper shows a VDVAE; this is a
small single-latent version of the same idea).

Encoder q(z | A, class): convolutions → (μ, log σ²) of a latent vector z (latent_dim). Decoder p(A | z, class):
:class:`~ubf_core.generators.conv.ConvDecoder` → softmax over k. Loss per pixel, averaged over maps:
(−Σ_{k,y,x} A·ln Â + β·KL(q ‖ N(0, I))) / (H·W), the reconstruction term being the cross-entropy of the abundance
vectors. Sampling decodes z ~ temperature·N(0, I), drawn per sample from its own generator, one map per decoder
call (so a sample does not depend on the others of the call).

A brightness model (``brightness=True``) encodes and decodes one more channel, the standardised ln s
(:func:`~ubf_core.generators.constraints.to_brightness_space`); its reconstruction term adds a unit-variance
Gaussian negative log-likelihood of ln s in units of the training σ: ½·Σ_{y,x} (c·(x_s − x̂_s))², c = 3.
"""

from __future__ import annotations

import torch
from torch import nn

from ubf_core.devices import adam
from ubf_core.errors import UBFInputError
from ubf_core.generators.base import own_copy
from ubf_core.generators.constraints import BRIGHTNESS_SPREAD
from ubf_core.generators.conv import ConvDecoder, ConvEncoder, LatentConvGenerator

__all__ = ["VAEGenerator"]


class _VAENet(nn.Module):
    """Encoder, decoder and (for a conditional model) the class embedding shared by both."""

    def __init__(self, k: int, size: tuple[int, int], channels: int, levels: int, latent_dim: int,
                 embedding: nn.Embedding | None, decoder_in: int):
        """k: map channels (the abundances, plus one for a brightness model)."""
        super().__init__()
        self.encoder = ConvEncoder(k, size, channels, levels)
        self.embedding = embedding
        cond_dim = 0 if embedding is None else embedding.embedding_dim
        self.to_latent = nn.Linear(self.encoder.out_dim + cond_dim, 2 * latent_dim)
        self.decoder = ConvDecoder(decoder_in, k, size, channels, levels)

    def _with_class(self, vectors: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return vectors if self.embedding is None else torch.cat([vectors, self.embedding(labels)], dim=1)

    def encode(self, abundances: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, k, H, W) → μ, log σ² (B, latent_dim)."""
        mu, logvar = self.to_latent(self._with_class(self.encoder(abundances), labels)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """(B, latent_dim) → abundance logits (B, k, H, W) (a brightness model: and x̂_s as channel k)."""
        return self.decoder(self._with_class(z, labels))


class VAEGenerator(LatentConvGenerator):
    """Compact conditional VAE; options: channels, levels, latent_dim, beta (weight of the KL term), p_uncond,
    init_seed. Sample option: temperature."""

    name = "vae"
    default_lr = 1e-3
    defaults = {**LatentConvGenerator.defaults, "beta": 1.0}

    def _check_config(self) -> None:
        super()._check_config()
        if not float(self.config["beta"]) > 0:
            raise UBFInputError("vae generator", f"beta must be positive, got {self.config['beta']}")

    def _build(self) -> None:
        c = self.config
        self.net = _VAENet(self.channels, self.size, c["channels"], c["levels"], c["latent_dim"],
                           self._class_embedding(), self._decoder_input_dim()).eval()

    def networks(self) -> dict[str, nn.Module]:
        return {"vae": self.net}

    def _make_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        self._optimizer = adam(self.net.parameters(), lr=lr)
        return [self._optimizer]

    def _train_step(self, abundances, labels, gen) -> dict[str, float]:
        with self._amp.autocast():
            mu, logvar = (v.float() for v in self.net.encode(abundances, labels))   # float32: exp(logvar) ≤ e^20
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen).to(self.device)
            pixels = abundances.shape[2] * abundances.shape[3]
            if self.brightness:
                out, k = self.net.decode(z, labels).float(), self.k
                log_probs = torch.log_softmax(out[:, :k], dim=1)
                recon = (-(abundances[:, :k] * log_probs).sum(dim=(1, 2, 3)).mean()
                         + 0.5 * (BRIGHTNESS_SPREAD * (abundances[:, k:] - out[:, k:])).pow(2).sum(dim=(1, 2, 3)).mean()
                         ) / pixels
            else:
                log_probs = torch.log_softmax(self.net.decode(z, labels).float(), dim=1)
                recon = -(abundances * log_probs).sum(dim=(1, 2, 3)).mean() / pixels
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1).mean() / pixels
            loss = recon + float(self.config["beta"]) * kl
        self._amp.step(loss, self._optimizer, max_norm=1.0, parameters=self.net.parameters())
        return {"loss": float(loss.detach()), "recon": float(recon.detach()), "kl": float(kl.detach())}

    def _sample(self, n, size, labels, generators, progress, temperature: float = 1.0) -> torch.Tensor:
        z, y = self._latents(generators, temperature), self._sample_labels(n, labels)
        if not self.brightness:
            return torch.softmax(self.net.decode(own_copy(z), y), dim=1)
        out = self.net.decode(own_copy(z), y)
        return self._with_brightness(torch.softmax(out[:, :self.k], dim=1), out[:, self.k:])
