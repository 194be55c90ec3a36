"""The ``sd15`` generator on a GPU: sampling speed, peak memory and one training step's time.

Random weights in Stable Diffusion 1.5's architecture (two U-Nets, pose guider, SD VAE, CLIP ViT-L/14
image tower; speed and memory do not depend on the weights), 192 x 384 images as the paper's stage 2.
Sampling: batch 16, DDIM 25 steps, classifier-free guidance 3.5 (both branches in one batch of 32),
weights in bf16; the reference U-Net's features are cached (the pipeline's default) and, side by side,
recomputed at every step. Training: fp32 weights with bf16 autocast (``accelerate``'s mixed precision,
as :func:`train_generator` runs it), AdamW and an EMA copy of the weights (decay 0.999), one step on a
batch of cached latents, CLIP embeddings and condition maps (as :class:`PairData` serves them), median over
``--train-steps`` after a warm-up. Peak memory is what torch allocated (and reserved) in each phase.
Writes results/benchmarks/sd15_gpu.json. Run on a machine with a CUDA GPU: ``python benchmarks/sd15_gpu.py``.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import time


def versions() -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in ("torch", "diffusers", "transformers", "accelerate")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=3.5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-batch", type=int, default=16, help="0 skips the training step")
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--image-size", type=int, nargs=2, default=(384, 192), metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("sd15_gpu.py needs a CUDA GPU (torch sees none): run it on a GPU machine or pass --device cpu")
    from posedive_lib.benchmarking import write_benchmark
    from posedive_lib.generator.pipeline import PoseDivePipeline
    from posedive_lib.generator.sizes import sd15_random_generator
    from posedive_lib.generator.train import GeneratorTrainConfig, prepare_training, training_step

    cuda = args.device.startswith("cuda")
    size = tuple(args.image_size)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def peak_gib() -> dict | None:
        return {"allocated": round(torch.cuda.max_memory_allocated() / 2 ** 30, 2),
                "reserved": round(torch.cuda.max_memory_reserved() / 2 ** 30, 2)} if cuda else None

    def reset_peak() -> None:
        gc.collect()  # the generator's forward hooks form reference cycles: free a deleted model now
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    # -- sampling, bf16 weights --------------------------------------------------------------------
    start = time.perf_counter()
    generator = sd15_random_generator(size, device=args.device).to(torch.bfloat16).eval()
    sync()
    build_seconds = time.perf_counter() - start
    parameters = {name: round(sum(p.numel() for p in module.parameters()) / 1e6, 1) for name, module in
                  (("reference_unet", generator.reference_unet), ("denoising_unet", generator.denoising_unet),
                   ("pose_guider", generator.pose_guider), ("vae", generator.vae), ("clip", generator.image_encoder))}
    pipe = PoseDivePipeline(generator)
    rng = torch.Generator().manual_seed(0)
    references = torch.rand(args.batch, 3, *size, generator=rng) * 2 - 1
    conditions = torch.rand(args.batch, 7, *size, generator=rng)

    def sample(reuse: bool) -> float:
        sync()
        t0 = time.perf_counter()
        pipe(references, conditions, args.steps, args.guidance, seed=0, batch_size=args.batch, reuse_reference=reuse)
        sync()
        return time.perf_counter() - t0

    sample(True)  # warm-up (kernel selection)
    sample(False)
    cached, recomputed, peaks = [], [], {}
    for _ in range(args.repeats):
        for reuse, times in ((True, cached), (False, recomputed)):
            reset_peak()
            times.append(sample(reuse))
            peaks["cached" if reuse else "recomputed"] = peak_gib()
    sampling_peak = peaks["cached"]
    t_cached, t_recomputed = statistics.median(cached), statistics.median(recomputed)
    rate = args.batch / t_cached
    print(f"sampling: {rate:.2f} images/s, {t_recomputed / t_cached:.2f}x from caching the reference features, "
          f"peak memory (GiB) {sampling_peak}", flush=True)
    del pipe, generator
    reset_peak()

    # -- one training step, fp32 weights + bf16 autocast -----------------------------------------------
    training = None
    if args.train_batch:
        from diffusers.training_utils import EMAModel

        generator = sd15_random_generator(size, device=args.device)
        config = GeneratorTrainConfig(batch=args.train_batch)  # the paper's: lr 1e-5, EMA 0.999
        accelerator, trainable, optimizer, schedule = prepare_training(generator, config)
        ema = EMAModel(trainable.parameters(), decay=config.ema_decay)
        model_gib = round(torch.cuda.memory_allocated() / 2 ** 30, 2) if cuda else None
        latent = generator.latent_size
        b = args.train_batch
        batch = {"target_latents": torch.randn(b, 4, *latent, generator=rng),
                 "reference_latents": torch.randn(b, 4, *latent, generator=rng),
                 "embeddings": torch.randn(b, 1, generator.denoising_unet.config.cross_attention_dim, generator=rng),
                 "conditions": torch.rand(b, 7, *size, generator=rng)}
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        seconds, losses = [], []
        for step in range(args.train_steps + 1):  # the first step is the warm-up (optimizer state, kernels)
            sync()
            t0 = time.perf_counter()
            losses.append(training_step(generator, batch, config, torch.Generator().manual_seed(step), accelerator,
                                        trainable, optimizer, schedule))
            ema.step(trainable.parameters())
            sync()
            seconds.append(time.perf_counter() - t0)
        training = {"batch": b, "mixed_precision": accelerator.mixed_precision, "optimizer": "AdamW",
                    "ema_decay": config.ema_decay, "memory_before_first_step_gib": model_gib,
                    "seconds_per_step_median": round(statistics.median(seconds[1:]), 4),
                    "seconds_per_step": [round(s, 4) for s in seconds[1:]], "warm_up_seconds": round(seconds[0], 3),
                    "images_per_s": round(b / statistics.median(seconds[1:]), 2), "peak_memory_gib": peak_gib(),
                    "seconds_per_step_minimum": round(min(seconds[1:]), 4),
                    "losses": [round(x, 4) for x in losses]}
        print(f"training: {training['seconds_per_step_median']} s per step of {b}, peak {training['peak_memory_gib']} GiB",
              flush=True)

    path = write_benchmark(
        "sd15_gpu", rate, "generated images/s (sd15 size, bf16)", True,
        {"image_size": list(size), "batch": args.batch, "steps": args.steps, "guidance_scale": args.guidance,
         "dtype": "bfloat16", "repeats": args.repeats, "parameters_millions": parameters,
         "build_seconds": round(build_seconds, 2),
         "sampling": {"seconds_per_batch": [round(s, 3) for s in cached], "peak_memory_gib": sampling_peak,
                      "peak_memory_gib_recomputing_reference": peaks["recomputed"],
                      "seconds_per_batch_recomputing_reference": [round(s, 3) for s in recomputed],
                      "reference_cache_speedup": round(t_recomputed / t_cached, 3),
                      "images_per_s_recomputing_reference": round(args.batch / t_recomputed, 3)},
         "training_step": training, "versions": versions()})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
