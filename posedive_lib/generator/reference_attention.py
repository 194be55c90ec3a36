"""Reference attention: the denoising U-Net's self-attention also attends to the reference U-Net's tokens.

Two attention processors, paired by their name in ``unet.attn_processors`` (both U-Nets share one
architecture, so names match exactly). The writer records the input of each self-attention of the
reference U-Net in a :class:`ReferenceBank`; the reader gives the matching self-attention of the
denoising U-Net keys and values from ``cat([own tokens, reference tokens])`` (queries from its own).
Both delegate the attention itself to diffusers' ``AttnProcessor2_0``.

The bank is filled once per reference image; each denoising call says which bank row every sample
reads (``index``) and which samples see no reference at all (``keep`` False: the unconditional branch
of classifier-free guidance), so cached features serve every denoising step.
"""
from __future__ import annotations

import torch
from diffusers.models.attention_processor import AttnProcessor2_0

SELF_ATTENTION = ".attn1.processor"


class ReferenceBank:
    """Reference U-Net self-attention inputs by processor name, plus the routing of the next read."""

    def __init__(self):
        self.features: dict[str, torch.Tensor] = {}
        self.index: torch.Tensor | None = None
        self.keep: torch.Tensor | None = None
        self.writing = False

    def clear(self) -> None:
        self.features.clear()
        self.index = self.keep = None

    def route(self, index: torch.Tensor | None = None, keep: torch.Tensor | None = None) -> None:
        """Sample ``b`` of the next denoising call reads bank row ``index[b]`` if ``keep[b]``."""
        self.index, self.keep = index, keep


class ReferenceWriteProcessor:
    def __init__(self, bank: ReferenceBank, name: str):
        self.bank, self.name, self.inner = bank, name, AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        if self.bank.writing:
            self.bank.features[self.name] = hidden_states
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class ReferenceReadProcessor:
    def __init__(self, bank: ReferenceBank, name: str):
        self.bank, self.name, self.inner = bank, name, AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        reference = self.bank.features.get(self.name)
        if reference is None or hidden_states.ndim != 3:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        batch, tokens = hidden_states.shape[:2]
        index = self.bank.index
        if index is None:
            if len(reference) != batch:
                raise ValueError(f"{len(reference)} reference rows for {batch} samples: route the bank with an index")
        else:
            reference = reference[index]
        keys = torch.cat([hidden_states, reference.to(hidden_states.dtype)], dim=1)
        mask = None
        keep = self.bank.keep
        if keep is not None and not bool(keep.all()):
            mask = torch.zeros(batch, 1, keys.shape[1], dtype=hidden_states.dtype, device=hidden_states.device)
            mask[~keep.to(mask.device), :, tokens:] = torch.finfo(hidden_states.dtype).min
        return self.inner(attn, hidden_states, keys, mask, temb)


def install_reference_attention(reference_unet, denoising_unet) -> ReferenceBank:
    """Give the pair of U-Nets writer and reader processors; returns the bank they share."""
    names = list(reference_unet.attn_processors)
    if names != list(denoising_unet.attn_processors):
        raise ValueError("the reference and denoising U-Nets must have the same architecture (attention processor names differ)")
    bank = ReferenceBank()
    reference_unet.set_attn_processor({n: ReferenceWriteProcessor(bank, n) if n.endswith(SELF_ATTENTION) else AttnProcessor2_0()
                                      for n in names})
    denoising_unet.set_attn_processor({n: ReferenceReadProcessor(bank, n) if n.endswith(SELF_ATTENTION) else AttnProcessor2_0()
                                      for n in names})
    return bank
