"""The ``full`` preset of chapter 04: ECT on CIFAR-10 from the pretrained EDM checkpoint.

The reference setting: RAdam 1e-4, batch 128, dropout 0.2, EMA 0.9999, 8 stages
of 25k iterations (q = 2), 1- and 2-step FID on 50k samples. Nothing is
downloaded; the inputs are paths in the chapter's config:

- ``cifar_dir``: CIFAR-10's python version (``data_batch_1`` .. ``data_batch_5``);
- ``edm_checkpoint``: NVlabs EDM's ``edm-cifar10-32x32-uncond-vp.pkl``;
- ``edm_repo``: a checkout of NVlabs/edm (its ``dnnlib`` and ``torch_utils``
  unpickle the network);
- FID through torch-fidelity (``pip install torch-fidelity``) with its Inception
  weights already in torch's hub cache, or at ``fid_weights``.

Several GPUs: ``torchrun --nproc_per_node=8 -m reprobook.ect.cifar --cifar-dir ... --edm-checkpoint ...
--edm-repo ...`` (data parallel; the batch is split over the processes).
"""

from __future__ import annotations

import argparse
import copy
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

from ..common import progress
from ..diffusion import EDMDenoiser, consistency_loss, ect_stage

REFERENCE = {"iterations": 200_000, "stage_len": 25_000, "batch": 128, "lr": 1e-4, "ema": 0.9999,
             "dropout": 0.2, "fid_samples": 50_000}


def check_inputs(cifar_dir: str | None, edm_checkpoint: str | None, edm_repo: str | None) -> None:
    """Raise one error naming every missing input, with what each one is."""
    problems = []
    if not cifar_dir or not all((Path(cifar_dir) / f"data_batch_{i}").is_file() for i in range(1, 6)):
        problems.append(f"cifar_dir={cifar_dir!r}: a folder with CIFAR-10's python batches data_batch_1..5 "
                        "(cifar-10-python.tar.gz, extracted)")
    if not edm_checkpoint or not Path(edm_checkpoint).is_file():
        problems.append(f"edm_checkpoint={edm_checkpoint!r}: NVlabs EDM's edm-cifar10-32x32-uncond-vp.pkl")
    if not edm_repo or not (Path(edm_repo) / "torch_utils").is_dir() or not (Path(edm_repo) / "dnnlib").is_dir():
        problems.append(f"edm_repo={edm_repo!r}: a checkout of github.com/NVlabs/edm (with dnnlib/ and torch_utils/)")
    if problems:
        raise FileNotFoundError("the full preset's CIFAR-10 run needs, as paths:\n  - " + "\n  - ".join(problems))


def load_cifar10(cifar_dir: str) -> torch.Tensor:
    """The 50,000 training images, (n, 3, 32, 32) float32 in [-1, 1]."""
    batches = []
    for i in range(1, 6):
        with open(Path(cifar_dir) / f"data_batch_{i}", "rb") as f:
            batches.append(np.asarray(pickle.load(f, encoding="bytes")[b"data"], dtype=np.uint8))
    x = np.concatenate(batches).reshape(-1, 3, 32, 32)
    return torch.from_numpy(x).float() / 127.5 - 1


def load_edm_denoiser(edm_checkpoint: str, edm_repo: str, dropout: float) -> EDMDenoiser:
    """The pretrained network of EDM's VP checkpoint (its inner U-Net, ``edm.model``, EMA weights),
    wrapped in ECT's preconditioning as the reference does (``ECMPrecond``: EDM's c_skip, c_out,
    c_in with sigma_data 0.5, c_noise = ln(sigma)/4, shifted by 0.003 at sampling).

    The checkpoint was trained with VP preconditioning (another c_in, c_out and noise label), so
    iteration 0 is this network under new preconditioning, not exactly EDM's VP denoiser; the
    reference accepts the same mismatch and tunes it away. Dropout is set to ``dropout``.
    """
    sys.path.insert(0, str(edm_repo))
    with open(edm_checkpoint, "rb") as f:
        edm = pickle.load(f)["ema"]
    unet = edm.model
    for module in unet.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = dropout

    class NoiseLabelled(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x, noise_label):
            return self.net(x, noise_label, class_labels=None)

    return EDMDenoiser(NoiseLabelled(unet), sigma_data=0.5, sigma_min=0.003)


def tune(denoiser: EDMDenoiser, images: torch.Tensor, *, iterations: int, stage_len: int, batch: int, lr: float,
         ema_decay: float, seed: int = 0, device: str = "cuda", loss_kwargs: dict | None = None) -> EDMDenoiser:
    """ECT with the reference optimizer and EMA; data parallel when launched by torchrun."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank, world = 0, 1
    if distributed:
        torch.distributed.init_process_group("nccl")
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        torch.cuda.set_device(device)
    if batch % world:
        raise ValueError(f"batch {batch} must be divisible by the number of processes {world}")
    denoiser = denoiser.to(device).train()
    ema = copy.deepcopy(denoiser).eval().requires_grad_(False)
    model = torch.nn.parallel.DistributedDataParallel(denoiser) if distributed else denoiser
    opt = torch.optim.RAdam(denoiser.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed + rank)
    for iteration in progress(range(iterations), desc="ECT on CIFAR-10", disable=rank != 0):
        idx = torch.randint(0, len(images), (batch // world,), generator=gen)
        x0 = images[idx].to(device)
        # Random horizontal flips, as in the reference's data pipeline.
        flip = torch.rand(len(x0), generator=gen) < 0.5
        x0[flip.to(device)] = x0[flip.to(device)].flip(-1)
        loss = consistency_loss(model, x0, ect_stage(iteration, stage_len), **(loss_kwargs or {}))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), denoiser.parameters()):
                p_ema.lerp_(p, 1 - ema_decay)
    return ema


@torch.no_grad()
def generate_uint8(denoiser: EDMDenoiser, n: int, sigmas: tuple[float, ...], seed: int, device: str,
                   batch: int = 500) -> torch.Tensor:
    from ..diffusion import consistency_sample

    out = []
    gen = torch.Generator(device=device).manual_seed(seed)
    for lo in range(0, n, batch):
        x = consistency_sample(denoiser, min(batch, n - lo), (3, 32, 32), sigmas=sigmas, generator=gen, device=device)
        out.append(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu())
    return torch.cat(out)


def fid(generated: torch.Tensor, real: torch.Tensor, device: str, weights: str | None = None) -> float:
    """FID between two uint8 image sets (n, 3, 32, 32) with torch-fidelity's Inception."""
    try:
        import torch_fidelity
    except ImportError as err:
        raise ImportError("FID needs torch-fidelity: pip install torch-fidelity") from err

    class Images(torch.utils.data.Dataset):
        def __init__(self, x):
            self.x = x

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i]

    kwargs = {"feature_extractor_weights_path": weights} if weights else {}
    metrics = torch_fidelity.calculate_metrics(input1=Images(generated), input2=Images(real), fid=True,
                                               cuda=device.startswith("cuda"), verbose=False, **kwargs)
    return float(metrics["frechet_inception_distance"])


def run(cfg, seed: int = 0, device: str = "cuda", fid_weights: str | None = None) -> list[dict]:
    """The reference run: tune, then 1- and 2-step FID of the EMA model at 50k samples."""
    check_inputs(cfg.cifar_dir, cfg.edm_checkpoint, cfg.edm_repo)
    images = load_cifar10(cfg.cifar_dir)
    denoiser = load_edm_denoiser(cfg.edm_checkpoint, cfg.edm_repo, REFERENCE["dropout"])
    ema = tune(denoiser, images, iterations=REFERENCE["iterations"], stage_len=REFERENCE["stage_len"],
               batch=REFERENCE["batch"], lr=REFERENCE["lr"], ema_decay=REFERENCE["ema"], seed=seed, device=device,
               loss_kwargs={"p_mean": cfg.p_mean, "p_std": cfg.p_std, "k": cfg.k, "b": cfg.b, "q": cfg.q,
                            "huber_c": cfg.huber_c})
    if int(os.environ.get("RANK", "0")) != 0:
        return []
    real = ((images + 1) * 127.5).round().to(torch.uint8)
    rows = []
    for steps, sigmas in [(1, (cfg.sigma_max,)), (2, (cfg.sigma_max, cfg.mid_sigma))]:
        x = generate_uint8(ema, REFERENCE["fid_samples"], sigmas, seed, device)
        rows.append({"iterations": REFERENCE["iterations"], "steps": steps, "FID": fid(x, real, device, fid_weights)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cifar-dir", required=True)
    parser.add_argument("--edm-checkpoint", required=True)
    parser.add_argument("--edm-repo", required=True)
    parser.add_argument("--fid-weights", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from ..chapters import get_chapter

    cfg = get_chapter("ect").config("full", {"cifar_dir": args.cifar_dir, "edm_checkpoint": args.edm_checkpoint,
                                             "edm_repo": args.edm_repo})
    for row in run(cfg, seed=args.seed, device="cuda", fid_weights=args.fid_weights):
        print(row)


if __name__ == "__main__":
    main()
