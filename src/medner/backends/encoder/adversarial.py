"""Adversarial training on the word embeddings (FGM, Miyato et al. 2017,
"Adversarial training methods for semi-supervised text classification").

After the ordinary backward pass of a batch, the word-embedding matrix is moved by a step of
L2 norm ``epsilon`` along its gradient (the direction that raises the loss most), the same
batch is learned again from there, and the embeddings are put back; the optimiser then
applies both passes' gradients. It costs a second forward and backward pass per step.
transformers' Trainer has no such option, hence this small mixin over its ``training_step``.
"""

from __future__ import annotations

import torch


class AdversarialMixin:
    """Put before a ``transformers.Trainer`` class: ``type(name, (AdversarialMixin, cls), {})``."""

    adversarial_epsilon: float = 0.0

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, dict(inputs), num_items_in_batch)
        # under `accelerate launch` the model is wrapped (DDP); the first pass's gradients are
        # already averaged over the processes, so every process moves by the same step
        embeddings = self.accelerator.unwrap_model(model).get_input_embeddings().weight
        grad = embeddings.grad
        if grad is None:
            return loss
        norm = torch.linalg.vector_norm(grad)
        if not torch.isfinite(norm) or norm == 0:
            return loss
        saved = embeddings.detach().clone()  # restored exactly, not by subtracting the shift
        with torch.no_grad():
            embeddings.add_(grad, alpha=float(self.adversarial_epsilon / norm))
        try:
            super().training_step(model, dict(inputs), num_items_in_batch)
        finally:
            with torch.no_grad():
                embeddings.copy_(saved)
        return loss


def with_adversarial(trainer_class, epsilon: float):
    """``trainer_class`` extended with FGM at ``epsilon``."""
    return type(f"Adversarial{trainer_class.__name__}", (AdversarialMixin, trainer_class),
                {"adversarial_epsilon": epsilon})


__all__ = ["AdversarialMixin", "with_adversarial"]
