"""Shared pieces of the sample trainings: seeding, synthetic data, tiny models."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def seed_all(seed: int) -> torch.Generator:
    """Seed torch and pin one thread so that every run is bit-for-bit repeatable."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    return torch.Generator().manual_seed(seed)


class GaussianMixture:
    """C Gaussian blobs in `dim` dimensions; an MLP can learn them, a linear probe mostly can."""

    def __init__(self, num_classes: int, dim: int = 32, noise: float = 1.0, seed: int = 0,
                 priors: torch.Tensor | None = None) -> None:
        g = torch.Generator().manual_seed(seed)
        self.num_classes, self.dim, self.noise = num_classes, dim, noise
        self.centers = torch.randn(num_classes, dim, generator=g) * 1.5
        self.priors = priors
        self.g = torch.Generator().manual_seed(seed + 1)

    def batch(self, n: int, classes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One fresh batch (an endless stream: no epoch ever repeats a sample)."""
        if classes is not None:
            y = classes
        elif self.priors is not None:
            y = torch.multinomial(self.priors, n, replacement=True, generator=self.g)
        else:
            y = torch.randint(0, self.num_classes, (n,), generator=self.g)
        x = self.centers[y] + self.noise * torch.randn(n, self.dim, generator=self.g)
        return x, y


class Classifier(nn.Module):
    """backbone (MLP) + head: the two parameter groups a probe reports."""

    def __init__(self, dim: int, num_outputs: int, hidden: int = 64, depth: int = 2,
                 act: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = dim
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), act()]
            d = hidden
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Linear(hidden, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class VAE(nn.Module):
    """A tiny Gaussian VAE on continuous data: encoder, mu/logvar heads, decoder."""

    def __init__(self, dim: int = 16, latent: int = 4, hidden: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh())
        self.mu_head = nn.Linear(hidden, latent)
        self.logvar_head = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        mu, logvar = self.mu_head(h), self.logvar_head(h)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decoder(z), mu, logvar, z


def vae_data(n: int, g: torch.Generator, dim: int = 16, latent: int = 4) -> torch.Tensor:
    """Points near a fixed random 4-d nonlinear manifold in 16-d, plus noise."""
    w = torch.Generator().manual_seed(1234)
    a = torch.randn(latent, dim, generator=w)
    b = torch.randn(dim, dim, generator=w) / math.sqrt(dim)
    s = torch.randn(n, latent, generator=g)
    return torch.tanh(s @ a) @ b + 0.05 * torch.randn(n, dim, generator=g)


def kl_per_sample(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) summed over latent dims, averaged over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()


def grad_norm(params) -> float:
    """Total L2 norm of the gradients present (what clip_grad_norm_ returns)."""
    gs = [p.grad.detach() for p in params if p.grad is not None]
    if not gs:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in gs])))


def ce_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor):
    """One plain cross-entropy training step; returns the loss (a tensor) and the grad norm before the step."""
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    gn = grad_norm(model.parameters())
    opt.step()
    return loss, gn


@torch.no_grad()
def accuracy(model: nn.Module, data: GaussianMixture, n: int = 1024) -> float:
    """Accuracy on a fresh held-out batch (drawn from a separate generator)."""
    g = torch.Generator().manual_seed(999)
    y = torch.randint(0, data.num_classes, (n,), generator=g)
    x = data.centers[y] + data.noise * torch.randn(n, data.dim, generator=g)
    return float((model(x).argmax(1) == y).float().mean())
