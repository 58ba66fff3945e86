"""PPO fine-tuning of the policy in the vector env (CleanRL-style: one file, top to bottom).

    python -m training.ppo --name first --total-steps 2000000
    python -m training.ppo --config recipe.yaml --init runs/sft/checkpoints/best.pt --critic-warmup 10
    python -m training.ppo --resume runs/first                      # continue exactly where it stopped
    torchrun --nproc_per_node 2 -m training.ppo --name ddp --threads 1   # one process per device

Configuration: the `PPOConfig` defaults, then a YAML file (`--config FILE`, any subset of
the fields, the model's under `model:`), then the command-line flags; `--resume` starts
from the run's own config.yaml instead of the defaults. The resolved config is written
to runs/<name>/config.yaml.

Each update collects `rollout` steps from each of `num_envs` envs (same-step autoreset:
an episode that ends, by "done" or at `max_steps`, is worth 0 after its last step; with
`bootstrap_truncated` one cut at `max_steps` is worth the value of its final
observation instead), computes GAE, then runs `epochs` passes
of `minibatches` clipped-PPO minibatches over it: masked factored log-probs
(`FactoredDistribution`), clipped value loss, entropy bonus, gradient clipping, Adam,
and a stop before any minibatch whose approximate KL passes `target_kl`. The entropy
bonus is the SUM of the per-head entropies (tile, kind, facing, recipe, end; a head the
action does not read counts 0), i.e. the entropy of the factored action at the sampled
earlier choices, averaged over the batch. With `--init`, the first `critic_warmup` updates train the
value head alone (value loss only, every other parameter untouched). With
`imitation_coef` > 0, every minibatch after the warm-up also adds that weight times
pre-training's imitation loss on `imitation_batch` reference samples of the non-trial
kinds (`training.sft.ImitationStream`): an anchor to what pre-training taught. Its
samples come from a background thread whose state checkpoints do not hold, so a
`--resume` with it on is not exact.

Under torchrun every process runs its own `num_envs` envs (seeds offset by rank),
gradients are all-reduced (averaged) before each step, and rank 0 logs and saves;
the KL early stop uses the mean over ranks so every rank stops together.

Metrics (metrics.csv, TensorBoard and W&B; one row per update, against env steps over
all ranks; episode figures are those of rank 0's episodes that ended in the update):
- charts/steps_per_s: env steps per wall second over the update (rollout + update);
- charts/episode_score: mean final score of the episodes that ended;
- charts/score/<kind>: the same per lesson kind; charts/trial_score: over trial kinds;
- charts/episode_entities: entities placed per ended episode;
- charts/invalid_rate: share of an ended episode's steps that were illegal;
- charts/on_path_fraction: share of an ended episode's entities that carry items;
- charts/episodes: episodes ended in the update;
- charts/learning_rate, charts/entropy_coef, charts/prefill: the schedules' values;
- val/mean_score, val/<kind>: greedy rollouts on validation seeds (`eval_every`), the
  figure checkpoints/best.pt is kept by;
- losses/policy, losses/value: clipped surrogate and (clipped) value loss;
- losses/entropy: summed head entropy; losses/entropy_<head>: each head's mean entropy;
- losses/approx_kl: mean of (ratio - 1) - log ratio of the last minibatch, before its step
  (a minibatch past `target_kl` is not stepped: the update stops there);
- losses/imitation: the imitation loss of the anchor's batches (with `imitation_coef`);
- losses/clip_fraction: share of samples whose ratio left [1 - clip, 1 + clip];
- losses/explained_variance: 1 - Var(returns - values) / Var(returns);
- losses/minibatches: minibatch steps taken (fewer than epochs x minibatches after a KL stop);
- time/env, time/forward, time/update, time/other: seconds of the update spent stepping
  the envs, in the rollout's forward passes, in the PPO update, and in everything else.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from training import checkpoint
from training.config import ConfigError, check_lessons, check_precision, lay_over, layered
from training.env import FactoryVectorEnv
from training.env.supply import kind_shares
from training.evaluate import validation
from training.hints import HINTS, distance_hints
from training.lessons import KINDS, TRIAL_KINDS
from training.model import FactoredDistribution, ModelConfig, Policy, precision_autocast, resolve_device
from training.runs import Run
from training.sft import LESSON_KINDS, ImitationStream, loss_and_metrics

HEADS = ("tile", "kind", "facing", "recipe", "end")


@dataclass
class PPOConfig:
    """PPO on the lesson curriculum (see the module docstring)."""

    # run
    name: str = "ppo"
    """Run folder name under `root`."""
    root: Path = Path("runs")
    """Where run folders live."""
    seed: int = 1
    """Seeds the network, the sampling and the envs (env i of rank r: seed + r * num_envs + i)."""
    device: str = "auto"
    """auto (CUDA when present), cpu, cuda or cuda:N."""
    precision: str = "auto"
    """auto, fp32 or bf16: bf16 runs the network's trunk under bfloat16 autocast (heads in
    float32); auto picks it where the device runs bf16 natively (CUDA, or a CPU with AMX or
    AVX-512 BF16; `training.model.bf16_native`)."""
    threads: int = 2
    """torch threads per process (use 1 per process for CPU DDP on 2 cores)."""
    env_threads: int = 2
    """mimic threads of each vector env."""
    checkpoint_every: int = 50
    """Write checkpoints/latest.pt every this many updates (and always at the end; 0: end only)."""
    eval_every: int = 0
    """Greedy rollouts on `eval_seeds` validation seeds per kind before the first update, every
    this many updates and at the end; checkpoints/best.pt keeps the best mean (0: never)."""
    eval_seeds: int = 5
    """Validation seeds (`training.lessons.VALIDATION_SEEDS`) per kind for those rollouts."""
    init: Path | None = None
    """Start from this policy checkpoint (e.g. supervised pre-training) instead of from scratch."""
    resume: Path | None = None
    """Continue the run in this folder from its checkpoints/latest.pt, exactly."""
    max_updates: int | None = None
    """End this session after this many updates (schedules still span total_steps; --resume goes on)."""
    wandb: bool = False
    """Also log to Weights & Biases (needs the wandb package)."""
    wandb_project: str = "factorion"
    """W&B project."""
    progress: bool = True
    """Show a progress bar (rank 0)."""

    # environment
    size: int = 11
    """Grid side of the lessons."""
    num_envs: int = 256
    """Envs per process."""
    kinds: tuple[str, ...] | None = None
    """Lesson kinds to draw (None: all, trials included)."""
    kind_weights: tuple[float, ...] | None = None
    """How often each of `kinds` is drawn, one non-negative weight per kind in its order
    (None: all equally often)."""
    prefill_start: float = 0.0
    """Share of the reference solution built at reset, at the start (curriculum)..."""
    prefill_end: float = 0.0
    """...and at the end of training, linearly in between."""
    max_steps: int | None = None
    """Steps before an episode is truncated (None: size * size // 2)."""
    entity_cost: float = 0.01
    """Reward cost per entity placed."""
    done_rule: bool = False
    """Mask "done" in the env while a sink is left short (`training.env.masks.done_masks`),
    an experiment; validation follows it."""

    # model (ignored with --init or --resume: the checkpoint's own is used)
    model: ModelConfig = field(default_factory=ModelConfig)

    # PPO
    total_steps: int = 5_000_000
    """Env steps over all processes."""
    rollout: int = 16
    """Steps per env per update."""
    epochs: int = 1
    """Passes over each rollout."""
    minibatches: int = 4
    """Minibatches per pass."""
    lr: float = 1e-3
    """Adam learning rate..."""
    anneal_lr: bool = True
    """...decayed linearly to 0 over total_steps."""
    gamma: float = 0.99
    """Discount."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip: float = 0.2
    """Policy ratio clip."""
    value_clip: float | None = 0.2
    """Clip the value update around the rollout's values (None: unclipped)."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    entropy_start: float = 0.01
    """Entropy bonus coefficient at the start..."""
    entropy_end: float = 0.001
    """...and at the end, linearly in between."""
    target_kl: float | None = 0.05
    """End an update at the first minibatch whose approximate KL exceeds this, before its step (None: never)."""
    max_grad_norm: float = 0.5
    """Global gradient norm clip."""
    norm_adv: bool = True
    """Normalise advantages per minibatch."""
    critic_warmup: int = 0
    """Updates that train only the value head (with --init)."""
    imitation_coef: float = 0.0
    """Weight of pre-training's imitation loss (`training.sft.loss_and_metrics`) on a batch of
    reference samples, added to every minibatch's loss, after the critic warm-up: an anchor
    to what pre-training taught while PPO improves the rest (0: none)."""
    imitation_batch: int = 64
    """Reference samples per minibatch when `imitation_coef` > 0."""
    imitation_kinds: tuple[str, ...] | None = None
    """Lesson kinds the anchor's reference samples come from (None: the non-trial kinds among `kinds`)."""
    critic_final_score: bool = True
    """The value head predicts the episode's final score less the entity costs to come; the
    value is that less the current score, which the env knows. Off: it predicts the value
    itself, so it must tell a solved layout (worth nothing more: "done" is right) from
    a nearly solved one (worth most of a lesson), and a critic that cannot, pays for going
    on past the solution, as it did: the policy learnt to fill the grid."""
    bootstrap_truncated: bool = False
    """Value an episode cut at `max_steps` by its final observation, as if it could go on. Off:
    the step limit is part of the task (the planner stops there too), and the policy does
    not see the step count, so a bootstrapped value, never corrected by a real ending,
    pays the policy for filling the grid until the limit instead of saying "done"."""


# --- configuration ----------------------------------------------------------------------


def parse_config(argv: list[str] | None = None) -> PPOConfig:
    """Defaults < the resumed run's config.yaml < --config YAML < flags."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--resume", type=Path)
    known, _ = pre.parse_known_args(argv)
    config = PPOConfig()
    if known.resume is not None:
        config = lay_over(config, Run.open(known.resume).config(), f"{known.resume}/config.yaml")
    description = (__doc__ or "").split("\n\n")[0]
    return layered(PPOConfig, argv, "python -m training.ppo", description, base=config)


# --- advantages -------------------------------------------------------------------------


def gae(
    rewards: Tensor,
    values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    final_values: Tensor,
    next_value: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Advantages and returns [T, N] of a same-step-autoreset rollout. Step t's reward
    ends an episode where terminated (the future is worth 0) or truncated (worth
    `final_values[t]`, the value of the episode's final observation); otherwise it is
    followed by step t + 1, or after the last step by `next_value` [N]."""
    steps = rewards.shape[0]
    ended = (terminated | truncated).float()
    rewards = rewards + gamma * truncated.float() * final_values
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(steps)):
        following = next_value if t == steps - 1 else values[t + 1]
        delta = rewards[t] + gamma * following * (1 - ended[t]) - values[t]
        last = delta + gamma * lam * (1 - ended[t]) * last
        advantages[t] = last
    return advantages, advantages + values


# --- distributed ------------------------------------------------------------------------


def setup(config: PPOConfig) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the process group when run under torchrun."""
    distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1  # torchrun's contract
    device = resolve_device(config.device)
    if not distributed:
        return 0, 1, device
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank()
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, dist.get_world_size(), torch.device("cuda", local)
    return rank, dist.get_world_size(), device


def all_reduce_grads(params: list[torch.nn.Parameter], world: int) -> None:
    """Average the gradients over the processes in one flat all-reduce."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        p.grad = flat[offset : offset + p.numel()].view_as(p).clone()
        offset += p.numel()


def mean_over_ranks(value: float, world: int, device: torch.device) -> float:
    if world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / world


def weights_digest(policy: Policy) -> str:
    h = hashlib.sha256()
    for tensor in policy.state_dict().values():
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# --- the run ----------------------------------------------------------------------------


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _schedule(start: float, end: float, done: float) -> float:
    return start + (end - start) * min(1.0, done)


def _wandb() -> Any:
    try:
        import wandb  # type: ignore[import-not-found]
    except ImportError:
        raise SystemExit("--wandb needs the wandb package: pip install wandb") from None
    return wandb


def train(config: PPOConfig) -> dict[str, Any]:
    """Run PPO as configured; returns the summary (also in summary.json)."""
    check_lessons(config.size, config.kinds, config.eval_seeds)
    check_precision(config.precision)
    reference_kinds = config.imitation_kinds or tuple(k for k in config.kinds or KINDS if k in LESSON_KINDS)
    if config.imitation_coef > 0 and (not reference_kinds or not set(reference_kinds) <= set(LESSON_KINDS)):
        # trials have no reference solution to imitate
        raise ConfigError("imitation_coef needs non-trial kinds to imitate (imitation_kinds, or among kinds)")
    if config.kind_weights is not None:  # checked before anything is written, as the env would check them
        try:
            kind_shares(config.kinds or (), config.kind_weights)  # the weights need their kinds listed
        except ValueError:
            raise ConfigError(
                "kind_weights: one non-negative weight per kind of kinds (listed too), not all zero"
            ) from None
    wandb = _wandb() if config.wandb else None  # before anything is written
    rank, world, device = setup(config)
    torch.set_num_threads(config.threads)
    state: dict[str, Any] = {}
    if config.resume is not None:
        folder = config.resume
        config = dataclasses.replace(config, name=folder.name, root=folder.parent)
        policy, state = checkpoint.load(folder / "checkpoints" / "latest.pt", device)
    elif config.init is not None:
        policy, _ = checkpoint.load(config.init, device)
    else:
        torch.manual_seed(config.seed)  # every rank builds the same network
        policy = Policy(config.model).to(device)
    config = dataclasses.replace(config, model=policy.config)
    run: Run | None = None
    if rank == 0:
        run = Run.open(config.root / config.name) if config.resume else Run.create(config.name, config, config.root)
    if world > 1:
        for tensor in policy.state_dict().values():
            dist.broadcast(tensor, 0)
    params = list(policy.parameters())
    value_params = {id(p) for p in policy.value_head.parameters()}
    optimizer = torch.optim.Adam(params, lr=config.lr, eps=1e-5)

    n, steps_per_update = config.num_envs, config.num_envs * config.rollout
    total_updates = max(1, config.total_steps // (steps_per_update * world))
    env = FactoryVectorEnv(
        num_envs=n,
        size=config.size,
        kinds=config.kinds,
        weights=config.kind_weights,
        prefill=config.prefill_start,
        max_steps=config.max_steps,
        entity_cost=config.entity_cost,
        done_rule=config.done_rule,
        threads=config.env_threads,
        copy=False,
    )
    update = 0
    if state:
        if state.get("world") != world:
            raise checkpoint.CheckpointError(
                f"checkpoint {config.root / config.name}/checkpoints/latest.pt was saved by {state.get('world')} "
                f"processes; resume it with as many, not {world}"
            )
        optimizer.load_state_dict(state["optimizer"])
        update = int(state["update"])
        env.set_state(state["envs"][rank])
        _set_rng_state(state["rng"][rank])
    else:
        env.reset(seed=config.seed + rank * n)
        random.seed(config.seed + rank)
        np.random.seed(config.seed + rank)
        torch.manual_seed(config.seed + rank)
    obs: dict[str, np.ndarray] = {"world": env.worlds, "action_mask": env.masks, "done_mask": env.done_masks}
    logger = None
    if wandb is not None and run is not None:
        logger = wandb.init(project=config.wandb_project, name=config.name, config=run.config(), dir=str(run.folder))
    bar = None
    if rank == 0 and config.progress:
        from tqdm import tqdm

        bar = tqdm(total=total_updates * steps_per_update * world, initial=update * steps_per_update * world)
        bar.set_description(config.name)

    t_ = config.rollout
    worlds = torch.zeros((t_, n, *env.worlds.shape[1:]), dtype=torch.int16)
    masks = torch.zeros((t_, n, *env.masks.shape[1:]), dtype=torch.int8)
    done_masks = torch.zeros((t_, n), dtype=torch.int8)
    hints = torch.zeros((t_, n, HINTS, *env.worlds.shape[2:]))  # kept: the update reuses them
    actions = torch.zeros((t_, n, 5), dtype=torch.long)
    logps, values, rewards, final_values, scores = (torch.zeros((t_, n)) for _ in range(5))

    # the env knows each world's score; with `critic_final_score` the value head predicts it
    # plus the value, and the score is taken off again here (zeros: the head is the value)
    def known(score: np.ndarray) -> Tensor:
        return torch.from_numpy(score).float() if config.critic_final_score else torch.zeros(len(score))

    terminated, truncated = (torch.zeros((t_, n), dtype=torch.bool) for _ in range(2))
    autocast = precision_autocast(device, config.precision)
    history: list[dict[str, float]] = []
    last_update = total_updates if config.max_updates is None else min(total_updates, update + config.max_updates)

    best = float(state.get("best_val", -1.0))
    kinds = config.kinds or tuple(KINDS)
    imitation: ImitationStream | None = None
    if config.imitation_coef > 0:
        rng = np.random.default_rng([config.seed, rank, 2])
        imitation = ImitationStream(reference_kinds, config.size, config.imitation_batch, rng)

    def evaluate_and_keep_best(metrics: dict[str, float]) -> None:
        nonlocal best
        if rank != 0 or not config.eval_every:
            return
        metrics.update(validation(policy, kinds, config.eval_seeds, config.size, config.done_rule))
        if metrics["val/mean_score"] > best and run is not None:
            best = metrics["val/mean_score"]
            saved = dataclasses.asdict(config)
            checkpoint.save(run.checkpoints / "best.pt", policy, update=update, val_score=best, config=saved)

    if update == 0 and config.eval_every and rank == 0:
        first: dict[str, float] = {}
        evaluate_and_keep_best(first)  # the starting policy is a candidate too: PPO must beat it
        if run is not None:
            run.log(0, first)
        history.append(first)

    while update < last_update:
        start = time.perf_counter()
        progress = update / total_updates
        lr = config.lr * (1.0 - progress) if config.anneal_lr else config.lr
        for group in optimizer.param_groups:
            group["lr"] = lr
        entropy_coef = _schedule(config.entropy_start, config.entropy_end, progress)
        env.config.prefill = _schedule(config.prefill_start, config.prefill_end, progress)
        t_env = t_forward = 0.0
        ended: dict[str, list[Any]] = {k: [] for k in ("kind", "score", "entities", "invalid_rate", "on_path")}

        # rollout
        policy.eval()
        for t in range(t_):
            tick = time.perf_counter()
            worlds[t].copy_(torch.from_numpy(obs["world"]))
            masks[t].copy_(torch.from_numpy(obs["action_mask"]))
            done_masks[t].copy_(torch.from_numpy(obs["done_mask"]))
            hints[t].copy_(torch.from_numpy(distance_hints(obs["world"], config.threads)))
            with torch.inference_mode(), autocast:
                features = policy.features(worlds[t].to(device), hints[t].to(device))
                dist_t = FactoredDistribution.from_features(
                    policy, features, masks[t].to(device), done_masks[t].to(device)
                )
                action = dist_t.sample()
                logps[t] = dist_t.log_prob(action).float().cpu()
            scores[t] = known(env.score)
            values[t] = features.value.float().cpu() - scores[t]
            actions[t] = action.cpu()
            tock = time.perf_counter()
            obs, reward, term, trunc, info = env.step(actions[t].numpy())
            t_env += time.perf_counter() - tock
            rewards[t] = torch.from_numpy(reward).float()
            terminated[t], truncated[t] = torch.from_numpy(term), torch.from_numpy(trunc)
            if "_final_obs" in info:
                final, where = info["final_info"], np.flatnonzero(info["_final_obs"])
                for key, source in (("score", "score"), ("entities", "entities"), ("invalid_rate", "invalid_rate")):
                    ended[key].extend(final[source][where].tolist())
                ended["on_path"].extend(final["on_path_fraction"][where].tolist())
                ended["kind"].extend(final["kind"][where].tolist())
                cut = np.flatnonzero(trunc)
                if len(cut) and config.bootstrap_truncated:
                    last = torch.from_numpy(np.stack([info["final_obs"][i]["world"] for i in cut]))
                    with torch.inference_mode(), autocast:
                        final_value = policy.features(last.to(device)).value.float().cpu()
                    final_values[t, cut] = final_value - known(final["score"][cut])
            t_forward += time.perf_counter() - tick
        t_forward -= t_env
        tick = time.perf_counter()
        with torch.inference_mode(), autocast:
            next_value = policy.features(torch.from_numpy(obs["world"]).to(device)).value.float().cpu()
        next_value = next_value - known(env.score)
        advantages, returns = gae(
            rewards, values, terminated, truncated, final_values, next_value, config.gamma, config.gae_lambda
        )
        t_forward += time.perf_counter() - tick

        # update
        tick = time.perf_counter()
        policy.train()
        b_worlds, b_masks, b_hints = worlds.flatten(0, 1), masks.flatten(0, 1), hints.flatten(0, 1)
        b_done_masks = done_masks.flatten()
        b_actions, b_logps, b_values = actions.flatten(0, 1), logps.flatten(), values.flatten()
        b_scores = scores.flatten()
        b_adv, b_returns = advantages.flatten(), returns.flatten()
        warmup = config.init is not None and update < config.critic_warmup
        size = steps_per_update // config.minibatches
        sums: dict[str, float] = {}
        count = 0
        stop = False
        for _ in range(config.epochs):
            order = torch.randperm(steps_per_update)
            for k in range(config.minibatches):
                mb = order[k * size : (k + 1) * size]
                with autocast:
                    features = policy.features(b_worlds[mb].to(device), b_hints[mb].to(device))
                    d = FactoredDistribution.from_features(
                        policy, features, b_masks[mb].to(device), b_done_masks[mb].to(device)
                    )
                    logp, entropies = d.log_prob_and_entropy(b_actions[mb].to(device))
                new_value = features.value.float() - b_scores[mb].to(device)
                old_value, ret = b_values[mb].to(device), b_returns[mb].to(device)
                log_ratio = logp - b_logps[mb].to(device)
                ratio = log_ratio.exp()
                adv = b_adv[mb].to(device)
                if config.norm_adv:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - config.clip, 1 + config.clip)).mean()
                value_loss = (new_value - ret) ** 2
                if config.value_clip is not None:
                    clipped = old_value + (new_value - old_value).clamp(-config.value_clip, config.value_clip)
                    value_loss = torch.max(value_loss, (clipped - ret) ** 2)
                value_loss = 0.5 * value_loss.mean()
                entropy = sum(e.mean() for e in entropies.values())
                assert isinstance(entropy, Tensor)
                if warmup:
                    loss = config.value_coef * value_loss
                else:
                    loss = policy_loss - entropy_coef * entropy + config.value_coef * value_loss
                    if imitation is not None:
                        with autocast:
                            imitation_loss, _ = loss_and_metrics(policy, imitation.next())
                        loss = loss + config.imitation_coef * imitation_loss
                with torch.no_grad():
                    approx_kl = float(((ratio - 1) - log_ratio).mean())
                kl = mean_over_ranks(approx_kl, world, device)  # every rank takes the same decision
                if config.target_kl is not None and kl > config.target_kl and not warmup:
                    sums["losses/approx_kl"] = kl
                    stop = True  # before this minibatch's step: the policy stays within reach of the rollout's
                    break
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if world > 1:
                    all_reduce_grads(params, world)
                if warmup:  # only the value head learns; Adam skips parameters without gradients
                    for p in params:
                        if id(p) not in value_params:
                            p.grad = None
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                with torch.no_grad():
                    figures = {
                        "losses/policy": float(policy_loss),
                        "losses/value": float(value_loss),
                        "losses/entropy": float(entropy),
                        "losses/clip_fraction": float(((ratio - 1).abs() > config.clip).float().mean()),
                        **{f"losses/entropy_{head}": float(entropies[head].mean()) for head in HEADS},
                    }
                    if imitation is not None and not warmup:
                        figures["losses/imitation"] = float(imitation_loss)
                for key, value in figures.items():
                    sums[key] = sums.get(key, 0.0) + value
                count += 1
                sums["losses/approx_kl"] = kl  # the latest minibatch's
            if stop:
                break
        t_update = time.perf_counter() - tick
        update += 1

        # log and save
        tick = time.perf_counter()
        metrics = {key: value / count if key != "losses/approx_kl" else value for key, value in sums.items()}
        variance = float(b_returns.var())
        metrics["losses/explained_variance"] = (
            float("nan") if variance == 0 else 1 - float((b_returns - b_values).var()) / variance
        )
        metrics["losses/minibatches"] = count
        metrics.update(_episode_metrics(ended))
        metrics["charts/learning_rate"] = lr
        metrics["charts/entropy_coef"] = entropy_coef
        metrics["charts/prefill"] = env.config.prefill
        if config.eval_every and (update % config.eval_every == 0 or update == last_update):
            tock = time.perf_counter()
            evaluate_and_keep_best(metrics)
            start += time.perf_counter() - tock  # evaluation is not training time
        if config.checkpoint_every and update % config.checkpoint_every == 0 or update == last_update:
            _save(policy, optimizer, update, env, config, world, run, best_val=best)
        elapsed = time.perf_counter() - start
        metrics["time/env"], metrics["time/forward"], metrics["time/update"] = t_env, t_forward, t_update
        metrics["time/other"] = elapsed - t_env - t_forward - t_update
        metrics["charts/steps_per_s"] = steps_per_update * world / elapsed
        history.append(metrics)
        step = update * steps_per_update * world
        if run is not None:
            run.log(step, metrics)
            if logger is not None:
                logger.log(metrics, step=step)
        if bar is not None:
            bar.update(steps_per_update * world)
            score = metrics.get("charts/episode_score", float("nan"))
            bar.set_postfix(score=f"{score:.3f}", sps=f"{metrics['charts/steps_per_s']:.0f}")

    digest = weights_digest(policy)
    digests = [digest]
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, digest)
        digests = gathered
    summary = {"updates": update, "steps": update * steps_per_update * world, "weights_sha256": digests}
    if run is not None:
        summary["folder"] = str(run.folder)
        run.summary(summary)
        run.close()
    if bar is not None:
        bar.close()
    if logger is not None:
        logger.finish()
    env.close()
    if imitation is not None:
        imitation.close()
    if world > 1:
        dist.destroy_process_group()
    summary["history"] = history
    return summary


def _episode_metrics(ended: dict[str, list[Any]]) -> dict[str, float]:
    if not ended["score"]:
        return {"charts/episodes": 0}
    scores = np.array(ended["score"])
    kinds = np.array(ended["kind"])
    out = {
        "charts/episodes": len(scores),
        "charts/episode_score": float(scores.mean()),
        "charts/episode_entities": float(np.mean(ended["entities"])),
        "charts/invalid_rate": float(np.mean(ended["invalid_rate"])),
        "charts/on_path_fraction": float(np.nanmean(ended["on_path"])) if np.isfinite(ended["on_path"]).any() else 0,
    }
    for kind in sorted(set(kinds.tolist())):
        out[f"charts/score/{kind}"] = float(scores[kinds == kind].mean())
    trial = np.isin(kinds, sorted(TRIAL_KINDS))
    if trial.any():
        out["charts/trial_score"] = float(scores[trial].mean())
    return out


def _save(
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    update: int,
    env: FactoryVectorEnv,
    config: PPOConfig,
    world: int,
    run: Run | None,
    best_val: float,
) -> None:
    """latest.pt on rank 0 with every rank's env and random state and the best validation
    score so far (resume is exact)."""
    mine = (env.get_state(), _rng_state())
    every: list[Any] = [mine]
    if world > 1:
        every = [None] * world
        dist.all_gather_object(every, mine)
    if run is None:
        return
    checkpoint.save(
        run.checkpoints / "latest.pt",
        policy,
        optimizer=optimizer.state_dict(),
        update=update,
        envs=[e for e, _ in every],
        rng=[r for _, r in every],
        config=dataclasses.asdict(config),
        world=world,
        best_val=best_val,
    )


def main(argv: list[str] | None = None) -> int:
    try:
        summary = train(parse_config(argv))
    except (ConfigError, checkpoint.CheckpointError, FileExistsError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if "folder" in summary:  # rank 0
        print(f"{summary['updates']} updates, {summary['steps']} steps: {summary['folder']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
