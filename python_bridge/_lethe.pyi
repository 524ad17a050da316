"""
Lethe native core (libtorch). Use it through the `lethe` ComfyUI pack or python_bridge.
"""
from __future__ import annotations
import collections.abc
import torch
import typing
__all__: list[str] = ['Cancelled', 'Descriptor', 'LetheError', 'NoiseSchedule', 'PatchCritic', 'UNet', 'Value', 'available_cores', 'best_match', 'build_info', 'complete_sdxl_sizes', 'convert_workflow', 'copy_detection', 'critic_activation', 'critic_conjugate', 'critic_loss', 'ddim_step', 'ddpm_step', 'detect_unet_config', 'dpo_loss', 'erasediff_combine', 'f_divergence', 'f_divergence_names', 'forget_error', 'frechet_distance', 'frequency_energy', 'frequency_mask', 'generator_loss', 'host_model', 'inference_timesteps', 'init_threads', 'kernel_distance', 'kohya_module_name', 'load_safetensors', 'memorization_rate', 'node_schemas_json', 'npo_loss', 'objective_config', 'objective_description', 'objective_names', 'percentile', 'run_evaluation', 'run_node', 'run_unlearning', 'run_workflow', 'save_safetensors', 'sdxl_vector', 'similarity_matrix', 'siss_combine', 'siss_losses', 'siss_weights', 'sscd_direction', 'sscd_margin', 'sscd_official_preprocess', 'sscd_progress', 'timestep_distribution', 'torch_version', 'uce_rows', 'uce_weight', 'unet_inference_bytes', 'variational_divergence_names', 'version', 'widgets_values_layout']
class LetheError(RuntimeError):
    pass
class Cancelled(LetheError):
    pass
class NoiseSchedule:
    @staticmethod
    def from_alphas_cumprod(alphas_cumprod: torch.Tensor, prediction_type: str = 'epsilon') -> NoiseSchedule:
        ...
    @staticmethod
    def from_flow_sigmas(sigmas: torch.Tensor) -> NoiseSchedule:
        """
        A flow-matching schedule: x_t = (1 - s_t) x_0 + s_t eps, velocity target eps - x_0.
        """
    def __init__(self, config_json: str = '{}') -> None:
        ...
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ...
    def noise_scale(self, t: torch.Tensor, rank: typing.SupportsInt | typing.SupportsIndex) -> torch.Tensor:
        ...
    def signal_scale(self, t: torch.Tensor, rank: typing.SupportsInt | typing.SupportsIndex) -> torch.Tensor:
        ...
    def split_prediction(self, x_t: torch.Tensor, model_output: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        (x0_hat, eps_hat) from a model output in the schedule's parameterisation.
        """
    def training_target(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ...
    @property
    def alphas_cumprod(self) -> torch.Tensor:
        ...
    @property
    def betas(self) -> torch.Tensor:
        ...
    @property
    def prediction_type(self) -> str:
        ...
class PatchCritic:
    """
    The variational f-divergence objective's critic.
    """
    def __init__(self, input_channels: typing.SupportsInt | typing.SupportsIndex, channels: typing.SupportsInt | typing.SupportsIndex = 64, layers: typing.SupportsInt | typing.SupportsIndex = 3, spectral_norm: bool = True, seed: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        ...
    def forward(self, x: torch.Tensor, mask: torch.Tensor, update: bool) -> torch.Tensor:
        """
        Patch logits [B, 1, h, w]; update: a training forward (one power iteration).
        """
    def parameters(self) -> list[torch.Tensor]:
        """
        The trainable tensors (live, they require grad).
        """
    def state(self) -> dict[str, torch.Tensor]:
        """
        Weights, biases and u/v vectors by name.
        """
class UNet:
    """
    The native LDM-layout UNet.
    """
    gradient_checkpointing: bool
    @staticmethod
    def create(config_json: str, seed: typing.SupportsInt | typing.SupportsIndex = 0) -> UNet:
        """
        A freshly initialised UNet from a JSON config.
        """
    @staticmethod
    def load(path: str, num_heads: typing.SupportsInt | typing.SupportsIndex | None = None, num_head_channels: typing.SupportsInt | typing.SupportsIndex | None = None, norm_groups: typing.SupportsInt | typing.SupportsIndex | None = None) -> UNet:
        """
        Load the UNet of a .safetensors checkpoint strictly, config detected from the weights.
        """
    def config_json(self) -> str:
        ...
    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """
        x_t [B,C,H,W], t [B], context [B,L,D], y [B,adm_in_channels] (SDXL only) -> [B,C,H,W]
        """
    def named_parameters(self) -> dict[str, torch.Tensor]:
        """
        The parameter tensors themselves (they carry .grad after backward).
        """
    def state_dict(self) -> dict[str, torch.Tensor]:
        """
        Detached views of the weights, by checkpoint key.
        """
class Descriptor:
    """
    A copy-detection descriptor (images -> unit vectors)
    """
    @staticmethod
    def load(path: str, expected_dim: typing.SupportsInt | typing.SupportsIndex | None = None) -> Descriptor:
        ...
    def embed(self, images: torch.Tensor, batch_size: typing.SupportsInt | typing.SupportsIndex = 64) -> torch.Tensor:
        ...
    @property
    def dim(self) -> int:
        ...
    @property
    def kind(self) -> str:
        ...
    @property
    def preprocessing(self) -> str:
        ...
    @property
    def sha256(self) -> str:
        ...
class Value:
    """
    A Lethe object travelling between nodes (model, dataset, selection, ...).
    """
    def __repr__(self) -> str:
        ...
    @property
    def type(self) -> str:
        ...
def available_cores() -> int:
    ...
def best_match(similarity: torch.Tensor, assigned: torch.Tensor) -> torch.Tensor:
    ...
def build_info() -> str:
    """
    Version, torch version and ABI the module was built with.
    """
def complete_sdxl_sizes(sizes: torch.Tensor, height: typing.SupportsFloat | typing.SupportsIndex, width: typing.SupportsFloat | typing.SupportsIndex) -> torch.Tensor:
    """
    SDXL sizes [B,6] with NaN where a prompt gave none -> [B,6] as ComfyUI completes them for an image of height x width pixels (height/width the image's, crops 0, target = height/width).
    """
def convert_workflow(workflow_json: str, object_info_json: str = '') -> str:
    """
    A workflow (UI or API format) as API-format JSON, as `lethe convert` (object_info_json: ComfyUI's /object_info for nodes that are not Lethe's).
    """
def copy_detection(queries: torch.Tensor, database: torch.Tensor, sources: torch.Tensor) -> dict:
    ...
def critic_activation(logits: torch.Tensor, divergence: str) -> torch.Tensor:
    ...
def critic_conjugate(logits: torch.Tensor, divergence: str) -> torch.Tensor:
    ...
def critic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, mask: torch.Tensor, divergence: str) -> torch.Tensor:
    ...
def ddim_step(schedule: NoiseSchedule, model_output: torch.Tensor, t: typing.SupportsInt | typing.SupportsIndex, t_prev: typing.SupportsInt | typing.SupportsIndex, x_t: torch.Tensor, eta: typing.SupportsFloat | typing.SupportsIndex = 0.0, noise: torch.Tensor | None = None, clip_sample_range: typing.SupportsFloat | typing.SupportsIndex = 0.0, use_clipped_model_output: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    ...
def ddpm_step(schedule: NoiseSchedule, model_output: torch.Tensor, t: typing.SupportsInt | typing.SupportsIndex, t_prev: typing.SupportsInt | typing.SupportsIndex, x_t: torch.Tensor, noise: torch.Tensor, variance_type: str = 'fixed_small', clip_sample_range: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    ...
def detect_unet_config(shapes: collections.abc.Mapping[str, collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]], num_heads: typing.SupportsInt | typing.SupportsIndex | None = None, num_head_channels: typing.SupportsInt | typing.SupportsIndex | None = None, norm_groups: typing.SupportsInt | typing.SupportsIndex | None = None) -> str:
    """
    Detect the UNet config (JSON) from a {key: shape} table.
    """
def dpo_loss(winner_error: torch.Tensor, loser_error: torch.Tensor, reference_winner_error: torch.Tensor, reference_loser_error: torch.Tensor, beta: typing.SupportsFloat | typing.SupportsIndex) -> tuple[torch.Tensor, float]:
    ...
def erasediff_combine(retain_gradient: collections.abc.Sequence[torch.Tensor], forget_gradient: collections.abc.Sequence[torch.Tensor], eta: typing.SupportsFloat | typing.SupportsIndex) -> tuple[list[torch.Tensor], float]:
    ...
def f_divergence(error: torch.Tensor, divergence: str, tau: typing.SupportsFloat | typing.SupportsIndex = 1.0, alpha: typing.SupportsFloat | typing.SupportsIndex = 0.5) -> torch.Tensor:
    ...
def f_divergence_names() -> list[str]:
    ...
def forget_error(residual: torch.Tensor, masks: torch.Tensor, config_json: str = '{}') -> torch.Tensor:
    ...
def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    ...
def frequency_energy(residual: torch.Tensor, config_json: str, tau: torch.Tensor | None = None) -> torch.Tensor:
    """
    Filtered energy per sample; tau [B] = t / (T - 1) when the cutoff depends on t.
    """
def frequency_mask(height: typing.SupportsInt | typing.SupportsIndex, width: typing.SupportsInt | typing.SupportsIndex, config_json: str) -> torch.Tensor:
    ...
def generator_loss(fake_logits: torch.Tensor, divergence: str) -> torch.Tensor:
    ...
def host_model(describe: typing.Any, predict: typing.Any, attach: typing.Any, description: str = 'ComfyUI MODEL', fingerprint: typing.Any = None, conditioning_sha256: typing.Any = None) -> Value:
    """
    A host model for native nodes. describe() -> ([(weight key, [out, in])], prediction_type (epsilon | v_prediction | flow), schedule table [T] (alphas_cumprod, or the flow sigmas), device, compute dtype (float32 | bfloat16 | float16: with float16 training scales its losses)); predict(x_t, t, context, adapters: bool) -> the model output in its prediction type; attach([(weight key, down, up, scale)], gradient_checkpointing: bool) installs LoRA adapters (an empty list removes them) and, with gradient_checkpointing, recomputes the model's blocks in backward; fingerprint() -> SHA-256 hex of the weights as computed (a run's identity; unlearning needs it); conditioning_sha256([contexts]) -> SHA-256 hex of what the host attaches to those contexts ('' for nothing; part of a run's identity).
    """
def inference_timesteps(num_train_timesteps: typing.SupportsInt | typing.SupportsIndex, steps: typing.SupportsInt | typing.SupportsIndex, spacing: str = 'leading', steps_offset: typing.SupportsInt | typing.SupportsIndex = 0) -> list[int]:
    ...
def init_threads(threads: typing.SupportsInt | typing.SupportsIndex = 0) -> int:
    """
    Set torch's thread count (0 = the cores this process may use); returns the count.
    """
def kernel_distance(features_a: torch.Tensor, features_b: torch.Tensor, subsets: typing.SupportsInt | typing.SupportsIndex = 20, subset_size: typing.SupportsInt | typing.SupportsIndex = 200, seed: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple[float, float]:
    ...
def kohya_module_name(ldm_path: str, config_json: str) -> str:
    """
    The kohya LoRA name (lora_unet_<diffusers path>) of an LDM UNet module path, for a UNet config.
    """
def load_safetensors(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """
    Returns (tensors, metadata). Tensors view a private copy-on-write mapping.
    """
def memorization_rate(best_scores: torch.Tensor, threshold: typing.SupportsFloat | typing.SupportsIndex) -> float:
    ...
def node_schemas_json(include_headless: bool = False) -> str:
    """
    Every node schema, in the shape of ComfyUI's /object_info.
    """
def npo_loss(error: torch.Tensor, reference_error: torch.Tensor, beta: typing.SupportsFloat | typing.SupportsIndex, beta_k: typing.SupportsFloat | typing.SupportsIndex) -> torch.Tensor:
    ...
def objective_config(name: str, config_json: str = '{}') -> str:
    """
    The objective's resolved config (defaults filled in), as JSON.
    """
def objective_description(name: str) -> str:
    ...
def objective_names() -> list[str]:
    ...
def percentile(values: torch.Tensor, q: typing.SupportsFloat | typing.SupportsIndex) -> float:
    ...
def run_evaluation(request_json: str, group: typing.Any = None, timeout_seconds: typing.SupportsFloat | typing.SupportsIndex = 300.0, progress: typing.Any = None) -> tuple[str, str, str]:
    """
    `lethe eval` from Python: the request's keys are the options (model, baseline, reference, out, descriptor, classifier, config, erased_concept, precision, no_attacks, seed, samples_per_caption, samples_per_class). group: a torch.distributed ProcessGroup splitting the sampling over its ranks (docs/distributed.md). Returns (report JSON, report folder, summary lines).
    """
def run_node(name: str, inputs: dict, node_id: str = '0', run_directory: str = '.', progress: typing.Any = None, folders: collections.abc.Mapping[str, str] = {}) -> tuple[tuple, dict]:
    """
    Runs a native node. Inputs: tensors, widget values or lethe Values; folders: model folders by ComfyUI name (e.g. loras); progress: called with a dict per update, cancels by raising or returning False or a reason text (raises Cancelled). Returns (outputs, ui).
    """
def run_unlearning(config_file: str, overrides: collections.abc.Sequence[str] = [], out: str = '', group: typing.Any = None, timeout_seconds: typing.SupportsFloat | typing.SupportsIndex = 300.0, progress: typing.Any = None) -> tuple[str, str]:
    """
    `lethe unlearn` from Python: the config file ("": defaults), --set overrides and --out. group: a torch.distributed ProcessGroup for a data-parallel run (every rank calls this; docs/distributed.md), its collectives waited on for at most timeout_seconds. Returns (summary JSON, run folder).
    """
def run_workflow(workflow: str = '', out: str = '', resume: str = '', overrides: collections.abc.Sequence[str] = [], group: typing.Any = None, timeout_seconds: typing.SupportsFloat | typing.SupportsIndex = 300.0, progress: typing.Any = None) -> tuple[str, str, str]:
    """
    `lethe run` from Python: a workflow file (or resume: a run folder) with --out and --set overrides. group: a torch.distributed ProcessGroup (every rank calls this; the unlearn and evaluate nodes split their work, rank 0 writes the folder; docs/distributed.md). Returns (run.json's record, run folder, the lines lethe run prints).
    """
def save_safetensors(path: str, tensors: collections.abc.Mapping[str, torch.Tensor], metadata: collections.abc.Mapping[str, str] = {}) -> None:
    ...
def sdxl_vector(pooled: torch.Tensor, sizes: torch.Tensor, size_embedding_dim: typing.SupportsInt | typing.SupportsIndex = 256) -> torch.Tensor:
    """
    SDXL's y: pooled [B,P] and sizes [B,6] (height, width, crop top, crop left, target height, target width) -> [B, P + 6 size_embedding_dim].
    """
def similarity_matrix(generated: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    ...
def siss_combine(retain_gradient: collections.abc.Sequence[torch.Tensor], forget_gradient: collections.abc.Sequence[torch.Tensor], scaling_norm: typing.SupportsFloat | typing.SupportsIndex) -> tuple[list[torch.Tensor], float, float]:
    ...
def siss_losses(p_x: torch.Tensor, p_a: torch.Tensor, m: torch.Tensor, x: torch.Tensor, a: torch.Tensor, gamma: torch.Tensor, sigma: torch.Tensor, lam: typing.SupportsFloat | typing.SupportsIndex, time_weight: torch.Tensor, masks: torch.Tensor, frequency_json: str = '{}', prediction_type: str = 'epsilon', tau: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    ...
def siss_weights(m: torch.Tensor, x: torch.Tensor, a: torch.Tensor, gamma: torch.Tensor, sigma: torch.Tensor, lam: typing.SupportsFloat | typing.SupportsIndex) -> tuple[torch.Tensor, torch.Tensor]:
    ...
def sscd_direction(before: torch.Tensor, after: torch.Tensor, forget: torch.Tensor, assigned: torch.Tensor) -> float:
    ...
def sscd_margin(generated: torch.Tensor, forget: torch.Tensor, assigned: torch.Tensor, retain: torch.Tensor, neighbours: typing.SupportsInt | typing.SupportsIndex = 16) -> tuple[float, float]:
    ...
def sscd_official_preprocess(images: torch.Tensor) -> torch.Tensor:
    ...
def sscd_progress(evaluated: typing.SupportsFloat | typing.SupportsIndex, original: typing.SupportsFloat | typing.SupportsIndex, retrained: typing.SupportsFloat | typing.SupportsIndex) -> float:
    ...
def timestep_distribution(schedule: NoiseSchedule, config_json: str = '{}', count: typing.SupportsInt | typing.SupportsIndex = 0, t_min: typing.SupportsInt | typing.SupportsIndex = 0, t_max: typing.SupportsInt | typing.SupportsIndex | None = None, seed: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple[str, torch.Tensor, torch.Tensor]:
    """
    (resolved kind, P(t) [T] over [t_min, t_max), `count` draws) of how training draws t for `schedule`.
    """
def torch_version() -> str:
    """
    The torch version _lethe was compiled against.
    """
def uce_rows(context: torch.Tensor, tokens: typing.SupportsInt | typing.SupportsIndex, destination_context: torch.Tensor, destination_tokens: typing.SupportsInt | typing.SupportsIndex) -> tuple[torch.Tensor, torch.Tensor]:
    ...
def uce_weight(weight: torch.Tensor, erase: torch.Tensor, destination: torch.Tensor, preserve: torch.Tensor, lam: typing.SupportsFloat | typing.SupportsIndex, erase_scale: typing.SupportsFloat | typing.SupportsIndex, preserve_scale: typing.SupportsFloat | typing.SupportsIndex) -> torch.Tensor:
    ...
def unet_inference_bytes(config_json: str, batch: typing.SupportsInt | typing.SupportsIndex, height: typing.SupportsInt | typing.SupportsIndex, width: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    The estimated peak activation bytes of one fp32 forward pass without autograd (the sampling guard's estimate).
    """
def variational_divergence_names() -> list[str]:
    ...
def version() -> str:
    """
    Version of the native core.
    """
def widgets_values_layout(object_info_schema_json: str) -> str:
    """
    The frontend's widgets_values layout of a node schema (/object_info shape), as JSON: widget names in order, null for a seed-control value.
    """
