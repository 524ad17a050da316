"""A ComfyUI MODEL (ModelPatcher) as Lethe's native trainer drives it (the "host path").

Native code asks four things through callbacks (python_bridge/bind_host.cpp):
- describe(): the model's linear weights (keys and shapes), its parameterisation and noise
  schedule read from ComfyUI's model_sampling, and its device. Discrete EPS and V_PREDICTION
  models (SD1.x/2.x, SDXL and their fine-tunes) give alphas_cumprod = 1 / (1 + sigma^2) over
  their 1000 sigmas; flow-matching CONST models (SD3.x: ModelSamplingDiscreteFlow; Flux:
  ModelSamplingFlux) give their sigma table, time shift included, at u = k / 1000 (Flux keeps
  10000 entries: every tenth is taken), so t in 0..999 means u = (t + 1) / 1000 for every family;
- predict(x_t, t, context, adapters): the model output in its own parameterisation for
  x_t = gamma_t x_0 + sigma_t eps at integer t, through the model's own apply_model, as
  ComfyUI's samplers call it: the input in ComfyUI's convention (EPS/V: x = x_t sqrt(s^2 + 1);
  CONST: x = x_t = (1 - s) x_0 + s eps, its noise_scaling), the model inputs from the model's
  own extra_conds over the CONDITIONING values of each context row (SDXL's y from pooled output
  and sizes, SD3's pooled y, Flux's y and guidance), and the output taken back from the
  denoised x_0 (eps = (x - x_0) / s, v = gamma eps - sigma x_0, velocity = (x - x_0) / s);
- attach(adapters, gradient_checkpointing): adds y += scale * up(down(x)) to the named linear
  layers (forward hooks on the model's own modules), or removes them; with gradient
  checkpointing, each element of the diffusion model's top-level block lists (UNet
  input/output blocks, MMDiT joint blocks, Flux double/single blocks) recomputes its
  activations in backward (torch.utils.checkpoint, non-reentrant), with the adapters on or off
  as they were in the forward pass; while adapters are attached, ComfyUI's in-place residual
  additions (Flux's blocks) are made safe for backward (each LayerNorm and checkpointed block gets
  a copy of its input) and comfy-kitchen's rotary-embedding kernels, which have no backward, are
  replaced by the same rotation in plain torch;
- fingerprint() and conditioning_digest(contexts): what a run's identity holds of the model and
  of the CONDITIONING values attached to its contexts.

ComfyUI runs nodes under torch.inference_mode(), so the weights it loaded can be inference
tensors, which autograd cannot save for backward. While adapters are attached, such weights
are swapped for ordinary copies (and every base weight has requires_grad off); detaching
puts the originals back, so the incoming MODEL is as it was. Other samplings (EDM and other
continuous schedules, x0 and image-to-image parameterisations) are refused with a message.
"""

import sys

import torch

from .comfy_glue import conditioning_digest, conditioning_values, context_key, tensor_bytes

FLOW_STEPS = 1000  # the flow-matching table Lethe trains over: s(u) at u = (t + 1) / 1000
REFUSED = {"EDM", "X0", "IMG_TO_IMG", "IMG_TO_IMG_FLOW", "COSMOS_RFLOW", "ModelSamplingContinuousEDM",
           "ModelSamplingContinuousV", "StableCascadeSampling"}


class HostModelAdapter:
    def __init__(self, model, where):
        self.patcher = model
        self.where = where
        self.enabled = False
        self.hooks = []
        self.checkpointed = []  # blocks whose forward is wrapped in torch.utils.checkpoint
        self.swapped = []  # (module, name, kind, original) to restore
        self.kind = None
        self.sigmas = None  # [T] ComfyUI sigma of each of Lethe's timesteps
        self.device = None
        self.conds = {}  # (context key, x shape) -> the model inputs extra_conds made for that row

    # ---- describe ----
    def _parameterisation(self):
        """(prediction type, sigma per Lethe timestep [T] float64) from the MODEL's model_sampling."""
        sampling = self.patcher.get_model_object("model_sampling")
        kinds = {cls.__name__ for cls in type(sampling).__mro__}
        table = getattr(sampling, "sigmas", None)
        if kinds & REFUSED or not torch.is_tensor(table):
            kind = None
        elif "CONST" in kinds and kinds & {"ModelSamplingDiscreteFlow", "ModelSamplingFlux"}:
            kind = "flow"
        elif "ModelSamplingDiscrete" in kinds and float(getattr(sampling, "sigma_data", 1.0)) == 1.0:
            kind = "v_prediction" if "V_PREDICTION" in kinds else "epsilon" if "EPS" in kinds else None
        else:
            kind = None
        if kind is None:
            names = ", ".join(c.__name__ for c in type(sampling).__mro__[1:] if c not in (torch.nn.Module, object))
            raise ValueError(f"{self.where}: this MODEL's sampling ({names}) "
                             "is not one Lethe's host path trains: expected epsilon or v-prediction with a discrete "
                             "schedule (SD1.x/2.x, SDXL) or flow matching (CONST: SD3.x, Flux)")
        sigmas = table.detach().to("cpu", torch.float64)
        if kind == "flow" and sigmas.numel() != FLOW_STEPS and sigmas.numel() % FLOW_STEPS == 0:
            stride = sigmas.numel() // FLOW_STEPS  # ModelSamplingFlux: 10000 entries at u = k / 10000
            sigmas = sigmas[stride - 1 :: stride]
        return kind, sigmas

    def describe(self):
        import comfy.model_management

        comfy.model_management.load_models_gpu([self.patcher])  # weights where ComfyUI computes with them
        self.kind, sigmas = self._parameterisation()
        self.sigmas = sigmas.float()
        table = sigmas if self.kind == "flow" else 1.0 / (1.0 + sigmas * sigmas)
        diffusion = self.patcher.model.diffusion_model
        weights = [(f"diffusion_model.{name}.weight", list(module.weight.shape))
                   for name, module in diffusion.named_modules()
                   if isinstance(module, torch.nn.Linear) and module.weight is not None and module.weight.dim() == 2]
        first = next(diffusion.parameters(), None)
        self.device = first.device if first is not None else torch.device("cpu")
        # The dtype ComfyUI computes in (BaseModel.apply_model): its manual cast dtype when it has
        # one (weights stored narrower), else the weights' own. fp16 makes the trainer scale its losses.
        manual = getattr(self.patcher.model, "manual_cast_dtype", None)
        dtype = manual if manual is not None else (first.dtype if first is not None else torch.float32)
        return weights, self.kind, table.float(), str(self.device), str(dtype).replace("torch.", "")

    # ---- fingerprint ----
    def fingerprint(self):
        """SHA-256 of what the model computes with: its class, its sampling (type and sigmas) and every
        weight of the diffusion model as loaded (ComfyUI applies weight patches when it loads a model),
        so a cancelled run resumes only on the same MODEL."""
        import hashlib

        import comfy.model_management

        comfy.model_management.load_models_gpu([self.patcher])
        digest = hashlib.sha256()
        sampling = self.patcher.get_model_object("model_sampling")
        digest.update(f"{type(self.patcher.model).__name__}/{type(sampling).__name__}".encode())
        tensors = [("model_sampling.sigmas", getattr(sampling, "sigmas", None))]
        tensors += sorted(self.patcher.model.diffusion_model.state_dict().items())
        with torch.inference_mode():  # reads ComfyUI's inference tensors as they are
            for name, tensor in tensors:
                if not torch.is_tensor(tensor):
                    continue
                digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
                digest.update(tensor_bytes(tensor))
        return digest.hexdigest()

    # ---- predict ----
    def predict(self, x_t, t, context, adapters):
        sigma = self.sigmas[t.cpu()].to(self.device)                      # [B]
        s = sigma.view(-1, 1, 1, 1)
        x = x_t.to(self.device)
        if self.kind != "flow":
            x = x * (s * s + 1.0).sqrt()  # EPS/V: ComfyUI's x = x_0 + s eps from the variance-preserving x_t
        conds = self._model_conds(context, x)
        self.enabled = bool(adapters)
        with torch.inference_mode(False), (torch.enable_grad() if adapters else torch.no_grad()):
            denoised = self.patcher.model.apply_model(x, sigma, **conds).float()
            output = (x - denoised) / s  # eps (EPS, V) or the velocity (CONST: denoised = x - s velocity)
            if self.kind == "v_prediction":
                output = (output - s * denoised) / (s * s + 1.0).sqrt()  # v = gamma eps - sigma x_0
        return output.to(x_t.device)

    def _model_conds(self, context, x):
        """The MODEL's inputs for a batch, as ComfyUI's samplers make them (samplers.py:encode_model_conds
        then each cond's process_cond and concat): extra_conds(**values) per context row, with the row as
        cross_attn, the CONDITIONING values registered for it (comfy_glue.to_native), and the width
        and height of the latent in pixels unless the values give them."""
        per_row = []
        for index in range(context.shape[0]):
            row = context[index]
            key = (context_key(row), tuple(x.shape[1:]))
            if key not in self.conds:
                params = dict(conditioning_values(row) or {})
                params.update(cross_attn=row.unsqueeze(0).to(self.device), device=self.device, noise=x[index : index + 1])
                params["width"] = params.get("width", x.shape[3] * 8)
                params["height"] = params.get("height", x.shape[2] * 8)
                try:
                    with torch.inference_mode(False), torch.no_grad():
                        made = self.patcher.model.extra_conds(**params)
                except (KeyError, TypeError, AttributeError) as error:
                    raise ValueError(f"{self.where}: the MODEL ({type(self.patcher.model).__name__}) needs a conditioning "
                                     f"value its prompt does not carry ({type(error).__name__}: {error}); connect the "
                                     "CONDITIONING of the model's own text encoder (e.g. CLIPTextEncode) to Lethe "
                                     "Dataset from Latents") from None
                self.conds[key] = {name: cond.process_cond(batch_size=1, device=self.device).cond for name, cond in made.items()}
            per_row.append(self.conds[key])
        out = {}
        for name, first in per_row[0].items():
            values = [row.get(name) for row in per_row]
            if torch.is_tensor(first):
                if not all(torch.is_tensor(v) and v.shape[1:] == first.shape[1:] for v in values):
                    raise ValueError(f"{self.where}: the prompts of one batch give the MODEL's input '{name}' in different "
                                     "shapes; encode them the same way (same text encoder, similar length)")
                out[name] = torch.cat(values)
            elif all(v == first for v in values):
                out[name] = first
            else:
                raise ValueError(f"{self.where}: the prompts of one batch give the MODEL's input '{name}' different values")
        if "c_crossattn" not in out:
            out["c_crossattn"] = context.to(self.device)
        return out

    def conditioning_digest(self, contexts):
        return conditioning_digest(row for tensor in contexts for row in tensor)

    # ---- attach ----
    def attach(self, adapters, gradient_checkpointing=False):
        for hook in self.hooks:
            hook.remove()
        self.hooks = []
        for block in self.checkpointed:
            del block.forward  # the class's forward again
        self.checkpointed = []
        self._restore()
        if not adapters:
            return
        diffusion = self.patcher.model.diffusion_model
        modules = dict(diffusion.named_modules())
        self._thaw(diffusion)
        self._differentiable_rope()
        # ComfyUI's blocks add to the residual stream in place (Flux: `img += ...`) after a
        # LayerNorm saved that tensor for backward: while training, each LayerNorm gets a copy.
        for module in diffusion.modules():
            if isinstance(module, torch.nn.LayerNorm):
                self.hooks.append(module.register_forward_pre_hook(self._copy_input))
        if gradient_checkpointing:
            for blocks in diffusion.children():
                if isinstance(blocks, torch.nn.ModuleList):
                    for block in blocks:
                        block.forward = self._checkpointed(block.forward)
                        self.checkpointed.append(block)
        for key, down, up, scale in adapters:
            path = key[len("diffusion_model."):-len(".weight")]
            if path not in modules:
                raise ValueError(f"{self.where}: the MODEL has no layer '{path}' for the LoRA weight '{key}'")
            self.hooks.append(modules[path].register_forward_hook(self._hook(down, up, float(scale))))

    def _checkpointed(self, forward):
        """forward run under torch.utils.checkpoint; the recomputation in backward sees the adapters
        on or off as the forward did (a reference prediction may run in between)."""
        import torch.utils.checkpoint

        def run(*args, **kwargs):
            enabled = self.enabled

            def again(*inner_args, **inner_kwargs):
                previous, self.enabled = self.enabled, enabled
                # A block may add to its input in place (Flux's `x += ...`): it gets a copy, so the
                # input kept for the recomputation stays as it was.
                inner_args = tuple(a.clone() if torch.is_tensor(a) else a for a in inner_args)
                inner_kwargs = {k: v.clone() if torch.is_tensor(v) else v for k, v in inner_kwargs.items()}
                try:
                    return forward(*inner_args, **inner_kwargs)
                finally:
                    self.enabled = previous

            if not torch.is_grad_enabled():
                return forward(*args, **kwargs)
            return torch.utils.checkpoint.checkpoint(again, *args, use_reentrant=False, **kwargs)

        return run

    def _hook(self, down, up, scale):
        def hook(module, inputs, output):
            if not self.enabled:
                return output
            x = inputs[0]
            delta = torch.nn.functional.linear(torch.nn.functional.linear(x.to(down.dtype), down), up)
            return output + (scale * delta).to(output.dtype)

        return hook

    def _copy_input(self, module, args):
        if self.enabled and torch.is_grad_enabled() and args and torch.is_tensor(args[0]):
            return (args[0].clone(),) + tuple(args[1:])
        return None

    def _differentiable_rope(self):
        """ComfyUI's rotary embeddings (comfy.ldm.*: apply_rope, apply_rope1) come from comfy-kitchen's
        fused kernels where it is installed, and those have no backward. While adapters are attached,
        every comfy.ldm module's kernel is swapped for the same rotation in plain torch."""
        for name, module in list(sys.modules.items()):
            if not name.startswith("comfy.ldm") or module is None:
                continue
            for attribute, function in (("apply_rope", _apply_rope), ("apply_rope1", _apply_rope1)):
                original = getattr(module, attribute, None)
                if callable(original) and not getattr(original, "__module__", "").startswith("comfy."):
                    self.swapped.append((module, attribute, "attribute", original))
                    setattr(module, attribute, function)

    def _thaw(self, diffusion):
        with torch.inference_mode(False):
            for module in diffusion.modules():
                for name, parameter in list(module._parameters.items()):
                    if parameter is None:
                        continue
                    if parameter.is_inference():
                        self.swapped.append((module, name, "parameter", parameter))
                        module._parameters[name] = torch.nn.Parameter(parameter.detach().clone(), requires_grad=False)
                    elif parameter.requires_grad:
                        self.swapped.append((module, name, "requires_grad", parameter))
                        parameter.requires_grad_(False)
                for name, buffer in list(module._buffers.items()):
                    if buffer is not None and buffer.is_inference():
                        self.swapped.append((module, name, "buffer", buffer))
                        module._buffers[name] = buffer.detach().clone()

    def _restore(self):
        for module, name, kind, original in reversed(self.swapped):
            if kind == "parameter":
                module._parameters[name] = original
            elif kind == "buffer":
                module._buffers[name] = original
            elif kind == "attribute":
                setattr(module, name, original)
            else:
                original.requires_grad_(True)
        self.swapped = []


def _apply_rope1(x, freqs_cis):
    """Rotates each consecutive pair (x_2i, x_2i+1) of x's last dimension by the 2x2 matrix
    freqs_cis[..., i, :, :] ([..., D/2, 2, 2], comfy.ldm.flux.math.rope's layout), in freqs_cis's dtype."""
    pairs = x.to(freqs_cis.dtype).reshape(*x.shape[:-1], -1, 1, 2)          # [..., D/2, 1, 2]
    rotated = freqs_cis[..., 0] * pairs[..., 0] + freqs_cis[..., 1] * pairs[..., 1]  # [..., D/2, 2]
    return rotated.reshape(*x.shape).type_as(x)


def _apply_rope(xq, xk, freqs_cis):
    return _apply_rope1(xq, freqs_cis), _apply_rope1(xk, freqs_cis)


def host_model_value(lethe, model, where):
    """The MODEL as a native host-model value (callbacks into a HostModelAdapter)."""
    adapter = HostModelAdapter(model, where)
    name = type(getattr(model, "model", model)).__name__
    return lethe.host_model(adapter.describe, adapter.predict, adapter.attach, f"ComfyUI MODEL ({name}) at {where}",
                            adapter.fingerprint, adapter.conditioning_digest)
