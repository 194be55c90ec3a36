"""The dual-U-Net generator: guider, reference attention, training, sampling, saving and loading."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from posedive_lib.generator.data import PairData, to_uint8
from posedive_lib.generator.model import PoseDiveGenerator, is_saved_generator
from posedive_lib.generator.pipeline import PoseDivePipeline
from posedive_lib.generator.pose_guider import PoseGuider
from posedive_lib.generator.sizes import sd15_generator, sd15_random_generator, tiny_generator
from posedive_lib.generator.train import PRESETS, diffusion_loss

SIZE = (64, 32)  # (H, W): small enough for fast tests, a multiple of VAE x U-Net downsampling


@pytest.fixture
def generator():
    return tiny_generator(image_size=SIZE, seed=0).eval()


def inputs(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, *SIZE, generator=g) * 2 - 1, torch.rand(n, 7, *SIZE, generator=g))


def predict(gen, references, conditions, keep=None, t=500, seed=1):
    latents = torch.randn(len(references), 4, SIZE[0] // 4, SIZE[1] // 4, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref_latents, embeddings = gen.encode_images(references), gen.embed_images(references)
        gen.write_reference(ref_latents, embeddings)
        return gen.denoise(latents, torch.full((len(latents),), t), embeddings, conditions, keep=keep)


def test_tiny_shapes_and_zero_initialised_guider_ignores_pose_maps(generator):
    references, conditions = inputs()
    out = predict(generator, references, conditions)
    assert out.shape == (2, 4, SIZE[0] // 4, SIZE[1] // 4)
    assert generator.pose_guider(conditions).abs().max() == 0
    assert torch.equal(out, predict(generator, references, torch.rand_like(conditions)))


@pytest.mark.parametrize("fuse", ["concat", "sum"])
def test_pose_guider_fusion_modes(fuse):
    guider = PoseGuider(block_out_channels=(8, 16, 32), embedding_channels=24, fuse=fuse)
    x = torch.rand(3, 7, 64, 32)
    assert guider(x).shape == (3, 24, 16, 8)
    with pytest.raises(ValueError, match=r"\(B, 7, H, W\)"):
        guider(torch.rand(3, 3, 64, 32))
    with pytest.raises(ValueError, match="fuse"):
        PoseGuider(fuse="max")


def test_reference_changes_the_output_unless_dropped(generator):
    references, conditions = inputs()
    other = inputs(seed=5)[0]
    assert not torch.allclose(predict(generator, references, conditions), predict(generator, other, conditions))
    # dropped samples (the unconditional branch) see neither the reference tokens nor its embedding
    keep = torch.tensor([False, False])
    assert torch.allclose(predict(generator, references, conditions, keep), predict(generator, other, conditions, keep), atol=1e-6)


def test_gradients_reach_reference_unet_and_guider_and_pose_matters_after_training(generator):
    references, conditions = inputs(4)
    data = PairData.from_images(generator, [0, 0, 1, 1], references, (conditions * 255).to(torch.uint8))
    config = replace(PRESETS["smoke"], drop_reference=0.0)
    generator.train()
    loss = diffusion_loss(generator, data.batch(4, 0, 0), config, torch.Generator().manual_seed(0))
    loss.backward()
    assert generator.reference_unet.conv_in.weight.grad.abs().sum() > 0
    assert generator.pose_guider.conv_out.weight.grad.abs().sum() > 0
    optimizer = torch.optim.AdamW(generator.trainable.parameters(), lr=1e-3)
    for step in range(3):
        optimizer.zero_grad()
        diffusion_loss(generator, data.batch(4, 0, step), config, torch.Generator().manual_seed(step)).backward()
        optimizer.step()
    generator.eval()
    assert not torch.allclose(predict(generator, references[:2], conditions[:2]),
                              predict(generator, references[:2], torch.rand_like(conditions[:2])))


def test_loss_falls_on_a_small_set():
    gen = tiny_generator(image_size=SIZE, seed=1)
    references, conditions = inputs(8, seed=3)
    data = PairData.from_images(gen, [0, 0, 1, 1, 2, 2, 3, 3], references, (conditions * 255).to(torch.uint8))
    config = replace(PRESETS["smoke"], drop_reference=0.0, noise_offset=0.0)

    def fixed_loss():
        with torch.no_grad():
            return float(np.mean([diffusion_loss(gen, data.batch(8, 9, k), config, torch.Generator().manual_seed(k)) for k in range(4)]))

    before = fixed_loss()
    optimizer = torch.optim.AdamW(gen.trainable.parameters(), lr=1e-3)
    for step in range(15):  # the fixed loss is about 0.3 times the first after 15 steps, 0.15 after 40
        optimizer.zero_grad()
        diffusion_loss(gen, data.batch(8, 0, step), config, torch.Generator().manual_seed(100 + step)).backward()
        optimizer.step()
    assert fixed_loss() < 0.7 * before


def test_cached_reference_features_equal_recomputing_them_every_step(generator):
    references, conditions = inputs(3)
    pipe = PoseDivePipeline(generator)
    cached = pipe(references, conditions, num_inference_steps=3, guidance_scale=2.0, seed=4)
    recomputed = pipe(references, conditions, num_inference_steps=3, guidance_scale=2.0, seed=4, reuse_reference=False)
    assert cached.shape == (3, 3, *SIZE) and cached.min() >= -1 and cached.max() <= 1
    assert torch.allclose(cached, recomputed, atol=1e-5)
    # seeded per sample: batching does not change a sample, another seed does
    assert torch.allclose(cached[2:], pipe(references, conditions, 3, 2.0, seed=4, batch_size=2)[2:], atol=1e-5)
    assert not torch.allclose(cached, pipe(references, conditions, 3, 2.0, seed=5))
    with pytest.raises(ValueError, match="condition"):
        pipe(references, conditions[:2])


def test_sampler_computes_pose_features_once_and_they_equal_the_condition_maps(generator):
    torch.nn.init.normal_(generator.pose_guider.conv_out.weight, std=0.05)  # a guider that is no longer zero
    references, conditions = inputs()
    latents, t = torch.randn(2, 4, SIZE[0] // 4, SIZE[1] // 4), torch.full((2,), 500)
    with torch.no_grad():
        features = generator.encode_conditions(conditions)
        embeddings = generator.embed_images(references)
        generator.write_reference(generator.encode_images(references), embeddings)
        from_maps = generator.denoise(latents, t, embeddings, conditions)
        assert torch.allclose(from_maps, generator.denoise(latents, t, embeddings, pose_features=features), atol=1e-6)
        assert not torch.allclose(from_maps, generator.denoise(latents, t, embeddings, pose_features=torch.zeros_like(features)))
        for wrong in ({}, {"conditions": conditions, "pose_features": features}):
            with pytest.raises(ValueError, match="either the condition maps or their pose_features"):
                generator.denoise(latents, t, embeddings, **wrong)
    calls = []
    generator.pose_guider.register_forward_hook(lambda *args: calls.append(1))
    pipe = PoseDivePipeline(generator)
    sampled = pipe(references, conditions, num_inference_steps=3, guidance_scale=2.0, seed=4)
    assert len(calls) == 1  # one guider pass for 3 steps and both guidance branches
    assert not torch.allclose(sampled, pipe(references, torch.rand_like(conditions), 3, 2.0, seed=4))


def test_training_resumes_exactly_and_saves_a_loadable_generator(tmp_path, train_smoke_generator):
    references, conditions = inputs(4)
    straight = train_smoke_generator(tmp_path / "straight", references, conditions)
    assert not is_saved_generator(train_smoke_generator(tmp_path / "resumed", references, conditions, stop_after=2))
    assert (tmp_path / "resumed" / "checkpoint").is_dir()  # stopped: a checkpoint, no saved generator yet
    log = tmp_path / "resumed" / "loss.csv"
    with open(log, "a") as handle:  # a run killed after logging step 3 but before its checkpoint redoes step 3
        handle.write("3,0.5,0.001\n")
    resumed = train_smoke_generator(tmp_path / "resumed", references, conditions)
    a, b = PoseDiveGenerator.from_pretrained(straight), PoseDiveGenerator.from_pretrained(resumed)
    for (name, p), q in zip(a.trainable.state_dict().items(), b.trainable.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6), name
    assert pd.read_csv(log)["step"].tolist() == list(range(1, PRESETS["smoke"].steps + 1))  # each step once
    out_a, out_b = predict(a.eval(), *inputs()), predict(b.eval(), *inputs())
    assert torch.allclose(out_a, out_b, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="generator.json"):
        PoseDiveGenerator.from_pretrained(tmp_path)


def test_training_previews_sample_the_ema_weights_and_leave_training_unchanged(tmp_path, train_smoke_generator):
    from posedive_lib.analysis.generator_figures import headless_pyplot, plot_training_previews
    from posedive_lib.generator.previews import TrainingPreview, load_previews

    references, conditions = inputs(4)
    config = replace(PRESETS["smoke"], ema_decay=0.5)
    oracle = torch.zeros(2, 3, *SIZE, dtype=torch.uint8)
    preview = TrainingPreview(references[:2], conditions[:2], oracle, every=3, sampling_steps=2)
    stale = tmp_path / "shown" / "previews" / "step_000002.npy"  # left by an earlier run in the same folder
    stale.parent.mkdir(parents=True)
    np.save(stale, np.zeros((2, 3, *SIZE), np.uint8))
    plain = train_smoke_generator(tmp_path / "plain", references, conditions, config=config)
    shown = train_smoke_generator(tmp_path / "shown", references, conditions, config=config, preview=preview)
    a, b = PoseDiveGenerator.from_pretrained(plain), PoseDiveGenerator.from_pretrained(shown)
    for (name, p), q in zip(a.trainable.state_dict().items(), b.trainable.state_dict().values()):
        assert torch.equal(p, q), name  # sampling along the way changes nothing that trains
    probe, samples = load_previews(tmp_path / "shown" / "previews")
    assert list(samples) == [0, 3, config.steps]  # the start, every 3 steps, the end; the stale step 2 is gone
    assert samples[0].shape == (2, 3, *SIZE) and samples[0].dtype == np.uint8
    assert set(probe) == {"references", "conditions", "oracle"} and probe["conditions"].shape == (2, 7, *SIZE)
    assert not np.array_equal(samples[0], samples[config.steps])  # the weights moved
    assert preview.seconds > 0
    # the last preview is what the saved (EMA) generator samples
    final = PoseDivePipeline(b.eval())(references[:2], conditions[:2], 2, preview.guidance_scale, preview.seed)
    assert np.array_equal(samples[config.steps], to_uint8(final).numpy())

    # an interrupted run resumes its previews: none recorded twice, none skipped
    stopped = train_smoke_generator(tmp_path / "resumed", references, conditions, stop_after=2, config=config, preview=preview)
    assert not is_saved_generator(stopped)
    assert list(load_previews(tmp_path / "resumed" / "previews")[1]) == [0]
    train_smoke_generator(tmp_path / "resumed", references, conditions, config=config, preview=preview)
    _, resumed = load_previews(tmp_path / "resumed" / "previews")
    assert list(resumed) == list(samples)
    assert all(np.abs(resumed[s].astype(int) - samples[s]).max() <= 1 for s in samples)

    figure = plot_training_previews(probe, samples, max_steps=2)
    titles = [ax.get_title() for ax in figure.axes[:5]]
    headless_pyplot().close(figure)
    assert titles == ["reference", "skeleton", "step 0", f"step {config.steps}", "oracle"]  # first and last kept
    with pytest.raises(ValueError, match="max_steps must be at least 2"):
        plot_training_previews(probe, samples, max_steps=1)
    with pytest.raises(ValueError, match="one condition per reference"):
        TrainingPreview(references[:2], conditions[:1])


def test_a_failed_preview_puts_the_training_weights_and_modes_back(tmp_path, monkeypatch):
    from diffusers.training_utils import EMAModel

    from posedive_lib.generator import train
    from posedive_lib.generator.previews import TrainingPreview

    generator = tiny_generator(image_size=SIZE, seed=0).train()
    before = {k: v.clone() for k, v in generator.trainable.state_dict().items()}
    ema = EMAModel(generator.trainable.parameters(), decay=0.5)
    ema.shadow_params = [p + 1 for p in ema.shadow_params]  # EMA weights that differ from the training ones

    def fail(pipeline, *args, **kwargs):
        assert not generator.training  # sampling runs in eval mode ...
        name, value = next(iter(generator.trainable.named_parameters()))
        assert not torch.equal(value, before[name])  # ... on the EMA weights
        raise RuntimeError("sampling failed")

    monkeypatch.setattr(PoseDivePipeline, "__call__", fail)
    references, conditions = inputs(2)
    with pytest.raises(RuntimeError, match="sampling failed"):
        train._record_preview(TrainingPreview(references, conditions), generator, generator.trainable, ema, 0, tmp_path)
    assert generator.training and all(m.training for m in generator.trainable.modules())
    for name, value in generator.trainable.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_sd15_size_loads_from_local_folders(tmp_path, sd15_like_folder):
    sd15_like_folder(tmp_path)
    gen = sd15_generator(tmp_path / "sd", tmp_path / "clip", image_size=SIZE).eval()
    assert gen.pose_guider.downsampling_factor == 8 and gen.latent_size == (8, 4)
    assert gen.scheduler.config.prediction_type == "v_prediction"
    references, conditions = inputs()
    with torch.no_grad():
        latents = gen.encode_images(references)
        gen.write_reference(latents, gen.embed_images(references))
        out = gen.denoise(latents, torch.tensor([10, 10]), gen.embed_images(references), conditions)
    assert out.shape == latents.shape == (2, 4, 8, 4)
    with pytest.raises(FileNotFoundError, match="is not a .*: missing"):
        sd15_generator(tmp_path / "clip", tmp_path / "clip")
    with pytest.raises(FileNotFoundError, match="not found"):
        sd15_generator(tmp_path / "nowhere", tmp_path / "clip")
    with pytest.raises(FileNotFoundError, match="not found at models_sd15"):  # a relative path, not a hub id: no download
        sd15_generator("models_sd15", tmp_path / "clip")
    with pytest.raises(FileNotFoundError, match="is not a CLIP image encoder folder"):
        sd15_generator(tmp_path / "sd", tmp_path / "sd")
    (tmp_path / "sd" / "unet" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing \['unet/config.json'\]"):
        sd15_generator(tmp_path / "sd", tmp_path / "clip")


def test_sd15_random_build_has_stable_diffusion_15_sizes():
    """The GPU benchmark's random-weight build (on the meta device: no memory) has SD 1.5's and CLIP ViT-L/14's parameter counts."""
    gen = sd15_random_generator(device="meta")
    count = lambda module: sum(p.numel() for p in module.parameters())
    assert count(gen.denoising_unet) == count(gen.reference_unet) == 859_520_964
    assert count(gen.vae) == 83_653_863
    assert count(gen.image_encoder) == 303_966_208
    assert gen.latent_size == (48, 24) and gen.pose_guider.downsampling_factor == 8


def test_mismatched_parts_are_rejected():
    with pytest.raises(ValueError, match="multiple of"):
        tiny_generator(image_size=(60, 32))
    with pytest.raises(ValueError, match="drop_reference"):
        replace(PRESETS["smoke"], drop_reference=1.5)


def test_weights_digest_names_the_contents_of_a_saved_generator(tmp_path):
    from posedive_lib.generator.model import weights_digest

    tiny_generator(image_size=SIZE, seed=0).save_pretrained(tmp_path / "a")
    tiny_generator(image_size=SIZE, seed=0).save_pretrained(tmp_path / "b")
    tiny_generator(image_size=SIZE, seed=1).save_pretrained(tmp_path / "c")
    assert weights_digest(tmp_path / "a") == weights_digest(tmp_path / "b") != weights_digest(tmp_path / "c")
    # loaded from one place and saved again: the configs now record where from, the key does not change
    from posedive_lib.generator.model import PoseDiveGenerator

    PoseDiveGenerator.from_pretrained(tmp_path / "a").save_pretrained(tmp_path / "elsewhere" / "a")
    assert '"_name_or_path"' in (tmp_path / "elsewhere" / "a" / "vae" / "config.json").read_text()
    assert weights_digest(tmp_path / "elsewhere" / "a") == weights_digest(tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="no weights"):
        weights_digest(tmp_path / "empty")
    with pytest.raises(ValueError, match="n_ids >= 2"):
        from posedive_lib.generator.identity import identity_probe

        identity_probe(None, n_ids=1)


def test_identity_check_is_cached_by_generator_weights_and_probe(smoke_world, tmp_path, monkeypatch):
    from posedive_lib.generator import experiment, pipeline

    world = smoke_world
    size = (world.config.height, world.config.width)
    tiny_generator(image_size=size, seed=0).save_pretrained(tmp_path / "a")
    tiny_generator(image_size=size, seed=1).save_pretrained(tmp_path / "b")
    check = dict(world=world, judge_dir=tmp_path / "judge", n_ids=2, per_id=1, steps=2, judge_iterations=2,
                 progress=False)
    scores, shown = experiment.identity_check(tmp_path / "a", **check)
    sampled = []
    real_call = pipeline.PoseDivePipeline.__call__
    monkeypatch.setattr(pipeline.PoseDivePipeline, "__call__", lambda *a, **k: sampled.append(1) or real_call(*a, **k))
    again, shown_again = experiment.identity_check(tmp_path / "a", **check)
    assert sampled == [] and again == scores and torch.equal(shown_again["generated"], shown["generated"])
    other, _ = experiment.identity_check(tmp_path / "b", **check)  # other weights: sampled anew
    assert sampled == [1] and other["rank1_reference"] == scores["rank1_reference"]


def test_export_stage1_keeps_the_loss_log_even_onto_its_own_folder(tmp_path):
    from posedive_lib.generator.experiment import export_stage1

    source = tmp_path / "stage1" / "generator"
    tiny_generator(image_size=SIZE, seed=0).save_pretrained(source)
    (tmp_path / "stage1" / "loss.csv").write_text("step,loss\n1,0.5\n")  # a training run: the log next to the weights
    exported = export_stage1(source, tmp_path / "export")
    assert (exported / "loss.csv").read_text() == "step,loss\n1,0.5\n"
    assert export_stage1(exported, exported) == exported  # exported onto itself: its own log survives
    assert (exported / "loss.csv").read_text() == "step,loss\n1,0.5\n"


def test_stage_configs_take_the_profiles_fine_tuning_length_unless_given():
    from posedive_lib.generator.experiment import stage_configs
    from posedive_lib.profiles import PROFILES

    for name, profile in PROFILES.items():
        stage1, stage2 = stage_configs(name, seed=3)
        assert stage2.steps == profile.generator_stage2_steps and stage1.seed == stage2.seed == 3
    assert PROFILES["full"].generator_stage2_steps > PROFILES["quick"].generator_stage2_steps
    stage1, stage2 = stage_configs("quick", stage1_steps=7, stage2_steps=9)
    assert (stage1.steps, stage2.steps) == (7, 9) and stage1.lr != stage2.lr  # stage presets kept otherwise
    with pytest.raises(ValueError, match="unknown profile"):
        stage_configs("huge")
    with pytest.raises(ValueError, match="at least 1"):  # 0 steps is an error, not "the default"
        stage_configs("quick", stage2_steps=0)


def test_impossible_generator_and_sampling_settings_are_named():
    from posedive_lib.augment.generate import AugmentConfig
    from posedive_lib.generator.train import GeneratorTrainConfig

    with pytest.raises(ValueError, match="must not be negative"):
        GeneratorTrainConfig(warmup=-1)
    with pytest.raises(ValueError, match="snr_gamma"):
        GeneratorTrainConfig(snr_gamma=0.0)
    with pytest.raises(ValueError, match="mixed_precision"):
        GeneratorTrainConfig(mixed_precision="fp8")
    with pytest.raises(ValueError, match="guidance_scale"):
        AugmentConfig(guidance_scale=-2.0)


def test_a_damaged_saved_generator_is_named(tmp_path):
    from posedive_lib.generator.model import PoseDiveGenerator

    tiny_generator(image_size=SIZE, seed=0).save_pretrained(tmp_path / "g")
    for weights in (tmp_path / "g" / "denoising_unet").glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ValueError, match="component 'denoising_unet' in .* cannot be loaded .*save the generator again"):
        PoseDiveGenerator.from_pretrained(tmp_path / "g")
    (tmp_path / "g" / "generator.json").write_text("{}")
    with pytest.raises(ValueError, match="generator.json is damaged"):
        PoseDiveGenerator.from_pretrained(tmp_path / "g")


def test_a_folder_that_is_not_a_saved_generator_is_refused_and_left_alone(tmp_path):
    """E.g. a Stable Diffusion download passed as the stage-1 start: never trained into or replaced."""
    from posedive_lib.generator.experiment import train_stages

    folder = tmp_path / "sd15"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "config.json").write_text("{}")
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    with pytest.raises(FileNotFoundError, match="generator.json missing"):
        train_stages(None, tmp_path / "run", pretrained=folder)
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
    assert not (tmp_path / "run").exists()


def test_continued_stage1_trains_the_unets_keeps_the_vae_and_is_cached(smoke_world, tmp_path, monkeypatch):
    from posedive_lib.generator import experiment

    monkeypatch.setenv("POSEDIVE_CACHE", str(tmp_path / "cache"))
    world = smoke_world
    tiny_generator(image_size=(world.config.height, world.config.width), seed=0).save_pretrained(tmp_path / "start")
    (tmp_path / "start" / "loss.csv").write_text("step,loss,lr\n1,0.5,0.1\n2,0.4,0.1\n3,0.3,0.1\n")
    continued = experiment.continued_stage1(world, "smoke", 2, tmp_path / "start", progress=False)
    history = pd.read_csv(continued / "loss.csv")  # the start's three steps, then the continuation's two
    assert history["step"].tolist() == [1, 2, 3, 4, 5] and history["loss"].tolist()[:3] == [0.5, 0.4, 0.3]
    start, trained = (PoseDiveGenerator.from_pretrained(p) for p in (tmp_path / "start", continued))
    assert all(torch.equal(a, b) for a, b in zip(start.vae.parameters(), trained.vae.parameters()))
    assert not torch.equal(next(start.denoising_unet.parameters()), next(trained.denoising_unet.parameters()))
    monkeypatch.setattr(experiment, "train_generator", lambda *a, **k: pytest.fail("cached run trained again"))
    assert experiment.continued_stage1(world, "smoke", 2, tmp_path / "start", progress=False) == continued
    with pytest.raises(ValueError, match="extra_steps"):
        experiment.continued_stage1(world, "smoke", 0, tmp_path / "start")


def test_both_stages_record_previews_that_the_experiment_draws(smoke_world, tmp_path, monkeypatch):
    from posedive_lib.generator import experiment
    from posedive_lib.generator.previews import load_previews

    monkeypatch.setenv("POSEDIVE_CACHE", str(tmp_path / "cache"))
    _, run_dir = experiment.trained_generator(smoke_world, "smoke", progress=False)
    steps = PRESETS["smoke"].steps
    for stage in ("stage1", "stage2"):
        probe, samples = load_previews(run_dir / stage / "previews")
        assert list(samples) == [0, steps] and len(probe["oracle"]) == len(samples[steps]) >= 2
    figures = experiment.save_training_previews(run_dir, tmp_path / "out")
    assert [p.name for p in figures] == ["training_previews_stage1.png", "training_previews_stage2.png"]
    assert all(p.stat().st_size > 0 for p in figures)
    timings = json.loads((run_dir / "timings.json").read_text())
    assert timings["stage2_preview_seconds"] > 0 and timings["stage2_seconds"] > 0
    # a run without previews removes the earlier figures from a reused output folder, and says why there are none
    assert experiment.save_training_previews(tmp_path / "untrained", tmp_path / "out") == []
    assert not any(p.exists() for p in figures)
    assert "trained before they were recorded" in experiment.missing_previews_reason(smoke_world, run_dir)
