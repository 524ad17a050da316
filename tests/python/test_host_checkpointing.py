"""The host path's memory options on a ComfyUI MODEL (tiny stand-ins of Flux and SDXL in the mock
ComfyUI): gradient checkpointing over the model's blocks trains exactly the LoRA that plain
backward trains (DPO, whose reference predictions run between the forwards and their backward,
so the recomputation must see the adapters as the forward did), is on only while training and leaves
the MODEL's blocks as they were; a bf16 MODEL (ComfyUI's usual dtype for Flux) trains float32
adapters with finite losses; an fp16 MODEL trains with loss scaling."""

import math

import pytest

from comfy_helpers import comfy, family_script

SCRIPT = """
    family = {family!r}

    def load(dtype):
        with torch.inference_mode():
            torch.manual_seed(0)
            if family == "flux":
                base = model_base.Flux(family_standins.TinyFlux(), model_sampling.flow_sampling("flux"))
            else:
                base = model_base.SDXL(family_standins.TinySDXLUNet(), model_sampling.model_sampling(model_sampling.EPS))
            base.diffusion_model.to(dtype)  # the network's weights; model_sampling keeps float32 sigmas, as in ComfyUI
            base.requires_grad_(False).eval()
        return ModelPatcher(base)

    g = torch.Generator().manual_seed(3)
    channels = 16 if family == "flux" else 4
    cond = lambda: [[torch.randn(1, 7, 48, generator=g), {{"pooled_output": torch.randn(1, 32, generator=g)}}]]
    forget_cond, retain_cond = cond() + cond(), cond() + cond()
    forget_latents, retain_latents = torch.randn(2, channels, 8, 8, generator=g), torch.randn(2, channels, 8, 8, generator=g)

    wrapped = []
    original_attach = host_module.HostModelAdapter.attach
    def counting(self, adapters, gradient_checkpointing=False):
        original_attach(self, adapters, gradient_checkpointing)
        wrapped.append(len(self.checkpointed))
    host_module.HostModelAdapter.attach = counting

    result = {{}}
    def work():
        with torch.inference_mode():
            forget = node("LetheDatasetFromLatents", "2", samples={{"samples": forget_latents}}, conditioning=forget_cond,
                          latent_scale=1.0)[0]
            retain = node("LetheDatasetFromLatents", "3", samples={{"samples": retain_latents}}, conditioning=retain_cond,
                          latent_scale=1.0)[0]
            dpo = node("LetheObjectivePreference", "4", method="dpo", beta=5000.0, beta_k=100.0, retain_weight=0.0)[0]
            train = dict(objective=dpo, steps=3, batch_size=2, learning_rate=1e-2, seed=0, lora_rank=4,
                         retain_caption_dropout=0.0, lora_targets="auto", forget=forget, retain=retain)
            for label, checkpointing, uid in (("plain", False, "5"), ("checkpointed", True, "8")):  # two run folders
                host = load(torch.float32)
                _, _, summary, lora = node("LetheUnlearnHostModel", uid, model=host, gradient_checkpointing=checkpointing,
                                           **train)
                name = node("LetheSaveLoRA", "6", lora=lora, filename_prefix="lethe/" + label)[0]
                result[label] = dict(summary=json.loads(summary), name=name,
                                     instance_forwards=sum("forward" in vars(m) for m in host.model.modules()))
            host = load(torch.bfloat16)
            summary = json.loads(node("LetheUnlearnHostModel", "7", model=host, gradient_checkpointing=True, **train)[2])
            result["bf16"] = dict(summary=summary, dtype=str(next(host.model.parameters()).dtype))
            host = load(torch.float16)
            result["fp16"] = json.loads(node("LetheUnlearnHostModel", "9", model=host, **train)[2])
    thread = threading.Thread(target=work)
    thread.start(); thread.join()
    loras = {{label: load_file(os.path.join(folder_paths.get_folder_paths("loras")[0], result[label]["name"]))
             for label in ("plain", "checkpointed")}}
    plain, checkpointed = loras["plain"], loras["checkpointed"]
    result["same_keys"] = sorted(plain) == sorted(checkpointed)
    result["max_difference"] = max((plain[k].float() - checkpointed[k].float()).abs().max().item() for k in plain)
    result["moved"] = max(plain[k].abs().max().item() for k in plain if "lora_up" in k)
    result["bf16_lora_dtypes"] = sorted({{str(t.dtype) for t in load_file(os.path.join(folder_paths.get_folder_paths("loras")[0],
                                                                                result["plain"]["name"])).values()}})
    result["wrapped"] = wrapped
    print(json.dumps(result))
"""


@pytest.fixture(scope="module", params=["flux", "sdxl"])
def checkpointing_run(request, tmp_path_factory):
    return request.param, comfy(tmp_path_factory.mktemp(request.param), family_script(SCRIPT, family=request.param))


def test_gradient_checkpointing_trains_the_same_lora(checkpointing_run):
    family, out = checkpointing_run
    assert out["same_keys"] and out["moved"] > 0
    assert "reused" not in out["checkpointed"]["summary"] or not out["checkpointed"]["summary"]["reused"]
    assert out["max_difference"] < 1e-6, (family, out["max_difference"])
    for name in ("dpo", "winner_error", "loser_error"):
        if name in out["plain"]["summary"]["final_terms"]:
            assert out["checkpointed"]["summary"]["final_terms"][name] == pytest.approx(
                out["plain"]["summary"]["final_terms"][name], rel=1e-5)


def test_gradient_checkpointing_is_on_only_while_training(checkpointing_run):
    family, out = checkpointing_run
    blocks = {"flux": 2, "sdxl": 2}[family]  # the stand-ins' top-level block lists: 1 + 1 (Flux), input_blocks 0 and 1 (SDXL)
    # attach, then detach, per run: plain (0 wrapped), checkpointed (every block), bf16 (every block), fp16 (0)
    assert out["wrapped"] == [0, 0, blocks, 0, blocks, 0, 0, 0], out["wrapped"]
    assert out["plain"]["instance_forwards"] == 0 and out["checkpointed"]["instance_forwards"] == 0


def test_a_bf16_model_trains_float32_adapters(checkpointing_run):
    _, out = checkpointing_run
    assert out["bf16"]["dtype"] == "torch.bfloat16" and out["bf16"]["summary"]["steps"] == 3
    assert all(value == value and abs(value) < 1e30 for value in out["bf16"]["summary"]["final_terms"].values())
    assert out["bf16_lora_dtypes"] == ["torch.float32"]


def test_an_fp16_model_trains_with_loss_scaling(checkpointing_run):
    """ComfyUI computes in fp16 on GPUs without bf16: the trainer then scales the losses, as a native
    fp16 run does (docs/performance.md §Precision), and says so; bf16 needs no scaling."""
    _, out = checkpointing_run
    fp16, bf16 = out["fp16"], out["bf16"]["summary"]
    assert fp16["precision"] == {"requested": "auto", "used": "host", "host_dtype": "float16", "loss_scaling": True}
    assert bf16["precision"]["host_dtype"] == "bfloat16" and bf16["precision"]["loss_scaling"] is False
    assert fp16["steps"] == 3 and "loss_scale" not in bf16["final_terms"]
    scale = fp16["final_terms"]["loss_scale"]  # 2^16 at the start, halved at each overflow
    assert 0 < scale <= 65536 and math.log2(scale).is_integer(), scale
    assert all(value == value and abs(value) < 1e30 for value in fp16["final_terms"].values())
