"""Small models the Python tests share: SPEC, the diffusers config of the tiny SD-shaped
checkpoint (the tiny_sd fixture of conftest.py); SDXL_SPEC, the tiny SDXL-shaped one's (context
width 2048 and 64-wide heads as SDXL base, 256-wide size embeddings, a 16-wide pooled output); transformer_blocks, which counts a UNet's
transformer blocks; CASES, the small UNet configurations the parity and kohya-name tests build (SDXL_VECTOR: the
pooled and size-embedding widths of the SDXL-style ones);
TinySSCD, a small TorchScript-able SSCD-style descriptor; PixelDescriptor, a parameter-free one
that tells images apart."""
import torch
import torch.nn.functional as F

SPEC = dict(block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1, cross_attention_dim=768,
            attention_head_dim=8, norm_num_groups=32)

SDXL_SPEC = dict(block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), layers_per_block=1, transformer_layers_per_block=(1, 2),
                 cross_attention_dim=2048, attention_head_dim=(1, 1), norm_num_groups=32, use_linear_projection=True,
                 addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=16 + 6 * 256)


def transformer_blocks(ref):
    return sum(type(m).__name__ == "BasicTransformerBlock" for m in ref.modules())


CASES = {
    # 3 levels, attention on the two finest levels, conv projections (SD1.x style)
    "sd1_style": dict(block_out_channels=(32, 64, 64), down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                      up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=2,
                      cross_attention_dim=24, attention_head_dim=4, norm_num_groups=8, use_linear_projection=False,
                      transformer_layers_per_block=1, heads={"num_heads": 4}),
    # 2 levels, attention on the coarse level only, linear projections, depth 2 (SD2.x style)
    "sd2_style": dict(block_out_channels=(16, 32), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                      up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), layers_per_block=1,
                      # diffusers' attention_head_dim is a head count per level: 32 channels / 4 = width 8
                      cross_attention_dim=20, attention_head_dim=(2, 4), norm_num_groups=8, use_linear_projection=True,
                      transformer_layers_per_block=2, heads={"num_head_channels": 8}),
    # 3 levels, no attention at level 0, depth 1 then 2 (middle 2), linear projections, the
    # label_emb over SDXL's y (pooled text embedding + 6 size embeddings): SDXL style
    "sdxl_style": dict(block_out_channels=(16, 32, 32), down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * 2,
                       up_block_types=("CrossAttnUpBlock2D",) * 2 + ("UpBlock2D",), layers_per_block=2,
                       cross_attention_dim=24, attention_head_dim=(2, 4, 4), norm_num_groups=8, use_linear_projection=True,
                       transformer_layers_per_block=(1, 1, 2), addition_embed_type="text_time", addition_time_embed_dim=8,
                       projection_class_embeddings_input_dim=12 + 6 * 8, heads={"num_head_channels": 8}),
}
# SDXL-style cases: the width of the pooled embedding and of each size embedding in y
SDXL_VECTOR = {"sdxl_style": (12, 8)}


class TinySSCD(torch.nn.Module):
    """A small ResNet-style SSCD: conv trunk with a residual block, GeM (p=3), projection, L2."""

    def __init__(self, dim=512, normalize=True):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.block = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1))
        self.fc = torch.nn.Linear(8, dim)
        self.normalize = normalize

    def forward(self, x):
        h = torch.relu(self.stem(x))
        h = torch.relu(h + self.block(h))
        h = h.clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1.0 / 3)
        h = self.fc(h)
        return F.normalize(h, dim=1) if self.normalize else h


class PixelDescriptor(torch.nn.Module):
    """A parameter-free TorchScript descriptor that tells images apart: each image pooled to 8x8
    (192 values), centred, zero-padded to SSCD's 512 dimensions, L2-normalized. An exact copy
    scores 1; noise against a structured image scores near 0 (a randomly initialised TinySSCD
    maps every image to nearly one embedding)."""

    def forward(self, x):
        h = F.adaptive_avg_pool2d(x, 8).flatten(1)
        return F.normalize(F.pad(h - h.mean(dim=1, keepdim=True), (0, 512 - h.shape[1])), dim=1)
