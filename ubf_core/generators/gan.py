"""A compact convolutional GAN of abundance maps (the UBF paper shows StyleGAN3; this is a small DCGAN-like
version with the stabilisers that make small GANs train: spectral normalisation in the discriminator and the hinge
loss).

Generator: z ~ N(0, I) (latent_dim) ⊕ class embedding → :class:`~ubf_core.generators.conv.ConvDecoder` → softmax
over k. Discriminator: spectrally normalised convolutions → hidden features h; score = w·h + ⟨embed(class), h⟩
(a projection discriminator when classes are given). One discriminator and one generator step per batch, Adam with
β = (0, 0.9). Sampling draws z per sample from its own generator and runs the generator one map at a time.

A brightness model (``brightness=True``): the generator makes one more channel, the standardised ln s
(:func:`~ubf_core.generators.constraints.to_brightness_space`, left unbounded), and the discriminator judges the
k + 1 channels together.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ubf_core.devices import adam
from ubf_core.generators.base import own_copy
from ubf_core.generators.conv import ConvDecoder, ConvEncoder, LatentConvGenerator

__all__ = ["GANGenerator"]

_HIDDEN = 256


class _Generator(nn.Module):
    def __init__(self, k: int, size: tuple[int, int], channels: int, levels: int, embedding: nn.Embedding | None,
                 decoder_in: int, brightness: bool = False):
        super().__init__()
        self.embedding = embedding
        self.k = k
        self.brightness = brightness
        self.decoder = ConvDecoder(decoder_in, k + (1 if brightness else 0), size, channels, levels)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """z (B, latent_dim), labels (B,) or None → abundances (B, k, H, W) on the simplex (with brightness: and
        the standardised ln s as channel k)."""
        if self.embedding is not None:
            z = torch.cat([z, self.embedding(labels)], dim=1)
        if not self.brightness:
            return torch.softmax(self.decoder(z), dim=1)
        out = self.decoder(z)
        return torch.cat([torch.softmax(out[:, :self.k], dim=1), out[:, self.k:]], dim=1)


class _Discriminator(nn.Module):
    def __init__(self, k: int, size: tuple[int, int], channels: int, levels: int, n_embeddings: int | None):
        super().__init__()
        self.features = ConvEncoder(k, size, channels, levels, spectral=True)
        self.hidden = nn.Sequential(spectral_norm(nn.Linear(self.features.out_dim, _HIDDEN)), nn.LeakyReLU(0.2))
        self.score = spectral_norm(nn.Linear(_HIDDEN, 1))
        self.projection = None if n_embeddings is None else spectral_norm(nn.Embedding(n_embeddings, _HIDDEN))

    def forward(self, abundances: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """(B, k, H, W) → realness scores (B,)."""
        h = self.hidden(self.features(abundances))
        out = self.score(h).squeeze(1)
        if self.projection is not None:
            out = out + (self.projection(labels) * h).sum(dim=1)
        return out


class GANGenerator(LatentConvGenerator):
    """Compact conditional GAN; options: channels, levels, latent_dim, p_uncond, init_seed. Sample option:
    temperature. The history's "loss" is the generator's loss; "loss_d" the discriminator's (hinge)."""

    name = "gan"
    default_lr = 2e-4

    def _build(self) -> None:
        c = self.config
        self.generator = _Generator(self.k, self.size, c["channels"], c["levels"], self._class_embedding(),
                                    self._decoder_input_dim(), self.brightness).eval()
        self.discriminator = _Discriminator(self.channels, self.size, c["channels"], c["levels"],
                                            None if self.classes is None else len(self.classes) + 1).eval()

    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def _make_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        self._opt_g = adam(self.generator.parameters(), lr=lr, betas=(0.0, 0.9))
        self._opt_d = adam(self.discriminator.parameters(), lr=lr, betas=(0.0, 0.9))
        return [self._opt_g, self._opt_d]

    def _train_step(self, abundances, labels, gen) -> dict[str, float]:
        b = len(abundances)
        z = torch.randn(b, self.config["latent_dim"], generator=gen).to(self.device)
        with self._amp.autocast():
            fake = self.generator(z, labels)
            loss_d = (torch.relu(1 - self.discriminator(abundances, labels).float()).mean()
                      + torch.relu(1 + self.discriminator(fake.detach(), labels).float()).mean())
        self._amp.step(loss_d, self._opt_d)
        with self._amp.autocast():
            loss_g = -self.discriminator(fake, labels).float().mean()
        self._amp.step(loss_g, self._opt_g)
        return {"loss": float(loss_g.detach()), "loss_d": float(loss_d.detach())}

    def _sample(self, n, size, labels, generators, progress, temperature: float = 1.0) -> torch.Tensor:
        z, y = self._latents(generators, temperature), self._sample_labels(n, labels)
        out = self.generator(own_copy(z), y)
        return out if not self.brightness else self._with_brightness(out[:, :self.k], out[:, self.k:])
