"""The generator's GPU path (skipped without CUDA): bf16 mixed-precision training with resume, and sampling
on the GPU in fp32 and bf16 against the CPU. Run on a GPU machine: ``pytest tests/test_generator_gpu.py``."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from posedive_lib.accelerators import make_accelerator
from posedive_lib.generator.model import PoseDiveGenerator
from posedive_lib.generator.pipeline import PoseDivePipeline
from posedive_lib.generator.sizes import tiny_generator
from posedive_lib.generator.train import PRESETS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
SIZE = (64, 32)


def inputs(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, *SIZE, generator=g) * 2 - 1, torch.rand(n, 7, *SIZE, generator=g)


def test_bf16_training_on_gpu_resumes_saves_a_generator_that_loads_on_cpu_and_lets_fp16_runs_follow(
        tmp_path, train_smoke_generator):
    references, conditions = inputs(4)
    straight = train_smoke_generator(tmp_path / "straight", references, conditions)
    train_smoke_generator(tmp_path / "resumed", references, conditions, stop_after=2)
    resumed = train_smoke_generator(tmp_path / "resumed", references, conditions)
    from accelerate.state import AcceleratorState

    assert AcceleratorState().mixed_precision == "bf16"  # "auto" on a GPU
    assert make_accelerator("auto", gpu_default="fp16").mixed_precision == "fp16"  # a Re-ID run may follow
    losses = pd.read_csv(tmp_path / "resumed" / "loss.csv")["loss"]
    assert len(losses) == PRESETS["smoke"].steps and losses.notna().all() and (losses < 10).all()
    a, b = PoseDiveGenerator.from_pretrained(straight), PoseDiveGenerator.from_pretrained(resumed)
    start = tiny_generator(image_size=SIZE, seed=0)
    moved = 0.0
    for (name, p), q, p0 in zip(a.trainable.state_dict().items(), b.trainable.state_dict().values(),
                                start.trainable.state_dict().values()):
        assert p.device.type == "cpu" and torch.isfinite(p).all(), name
        assert torch.allclose(p, q, atol=1e-3), name  # resumed == straight, up to GPU kernel non-determinism
        moved = max(moved, float((p - p0).abs().max()))
    assert moved > 1e-4  # the weights trained


def test_sampling_on_gpu_matches_cpu_in_fp32_and_bf16_stays_close():
    references, conditions = inputs(3)
    gen = tiny_generator(image_size=SIZE, seed=0).eval()
    torch.nn.init.normal_(gen.pose_guider.conv_out.weight, std=0.05)  # make the pose maps matter
    cpu = PoseDivePipeline(gen)(references, conditions, num_inference_steps=4, guidance_scale=2.0, seed=3)
    pipe = PoseDivePipeline(gen.to("cuda"))
    fp32 = pipe(references, conditions, num_inference_steps=4, guidance_scale=2.0, seed=3)
    recomputed = pipe(references, conditions, num_inference_steps=4, guidance_scale=2.0, seed=3, reuse_reference=False)
    assert fp32.device.type == "cpu" and fp32.shape == cpu.shape
    assert (fp32 - cpu).abs().max() < 2e-2  # TF32 convolutions on the GPU
    assert (fp32 - recomputed).abs().max() < 1e-3
    bf16 = PoseDivePipeline(gen.to(torch.bfloat16))(references, conditions, num_inference_steps=4, guidance_scale=2.0, seed=3)
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    assert torch.corrcoef(torch.stack([bf16.flatten(), cpu.flatten()]))[0, 1] > 0.95


def test_augmentation_samples_on_the_gpu_in_bf16_close_to_the_cpu(smoke_world, tmp_path):
    if not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip("this GPU has no native bf16: augment_dataset samples in fp32 there")
    from posedive_lib.augment.condition_gallery import GalleryConfig, build_condition_gallery
    from posedive_lib.augment.dataset_augmentation import _to_sampling_device
    from posedive_lib.augment.generate import AugmentConfig, augment
    from posedive_lib.generator.data import load_images, stack_conditions

    train = smoke_world.subset("train")
    gallery = build_condition_gallery(GalleryConfig(size=4), cache=tmp_path / "gallery", progress=False)
    config = AugmentConfig(per_id=1, steps=2, batch=4)
    gen = tiny_generator(seed=0).eval()
    torch.nn.init.normal_(gen.pose_guider.conv_out.weight, std=0.05)
    reference = tiny_generator(seed=0).eval()
    reference.load_state_dict(gen.state_dict())
    assert _to_sampling_device(gen, torch.device("cuda")) == "cuda bfloat16"  # as augment_dataset moves it
    manifest = augment(train, smoke_world.root, gallery, tmp_path / "out", config, generator=gen, progress=False)
    parameter = next(gen.parameters())
    assert parameter.device.type == "cuda" and parameter.dtype == torch.bfloat16  # sampled there
    index = gallery.table.reset_index().set_index("condition_id").loc[manifest["condition_id"], "index"].to_numpy()
    conditions = stack_conditions({k: v[index] for k, v in gallery.maps().items()}).float() / 255
    parents = train.set_index("path").loc[manifest["parent"]].reset_index()
    cpu = PoseDivePipeline(reference)(load_images(parents, smoke_world.root), conditions, config.steps,
                                      config.guidance_scale, seeds=manifest["seed"].tolist())
    gpu = load_images(manifest, tmp_path / "out")
    assert torch.corrcoef(torch.stack([gpu.flatten(), cpu.flatten()]))[0, 1] > 0.9  # bf16 and JPEG against fp32
