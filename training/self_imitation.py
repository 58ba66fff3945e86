"""Self-imitation: the policy imitates its own sampled episodes that solved their lesson.

    python -m training.self_imitation --init runs/sft/checkpoints/best.pt [--minutes 20] ...
    python -m training.self_imitation --init CKPT --collect improved [--minutes 45] ...

Pre-training (`training.sft`) teaches the next placement on partial layouts of the
reference solutions. A greedy rollout soon stands in a layout no reference passed
through (its own earlier choices built it), and there imitation taught it nothing: the
machine lessons' greedy rollouts solve about one lesson in seven, while one sampled
episode in twenty solves them and a search over a dozen finds a solution for half.

So the policy samples episodes in the vector env; every episode that solved its lesson
(score at least `training.evaluate.SOLVED`) goes, step by step, into a buffer, and the
policy learns the log-likelihood of those steps' actions: filtered behaviour cloning,
or expert iteration with the sampler as the expert. It raises the probability of paths
that work, from the states the policy itself reaches. Each step also trains on a batch
of the reference imitation (`training.sft.loss_and_metrics`, weighted `expert_weight`),
so the policy keeps what pre-training taught it. Unlike PPO there is no ratio and no
critic: failures teach nothing, successes are ordinary supervised targets, so a small
learning rate cannot be blown off course by one unlucky batch.

With `--collect improved` the episodes come from `training.improvement` instead: on
`lessons_per_collect` fresh training lessons per round, every greedy rollout that
failed has the one choice changed (among the policy's `alternatives` next most likely
actions at each state it passed) after which greedy play scores best, if that solves
the lesson (or, without `solved_only`, beats it by `margin`). The policy learns that
choice and the greedy steps after it: what greedy play needs, from the states greedy
play reaches.

Kinds are drawn in proportion to how far the starting policy's greedy rollouts are
from solving them (weight 1 - its validation score, at least `weight_floor`), so the
episodes go where they are needed. Trial kinds may be listed: their rare successes
teach as much as any. Validation, `best.pt` (the starting policy included, so a recipe
that exports it never ships a worse policy) and the run folder work as in
`training.sft`. Configuration: `SelfImitationConfig`, from its defaults < a YAML file
(`--config`) < command-line flags.

Metrics (`runs/<name>/metrics.csv` and TensorBoard, against env steps sampled):
- losses/self: the mean negative log-likelihood of the buffer batch's actions;
- losses/loss, losses/tile, acc/*: the reference imitation's batch, as in `training.sft`;
- collect/solved_<kind>: share of the episodes of that kind ended since the last log
  that solved their lesson (with "improved": of the greedy rollouts); collect/episodes:
  how many ended; collect/improved_<kind> ("improved"): share of them that gave an
  improved episode;
- charts/buffer: steps in the buffer; charts/env_steps_per_s, charts/learning_rate;
- val/mean_score and val/<kind>: greedy rollouts on held-out seeds.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from training.checkpoint import CheckpointError, load, save
from training.config import ConfigError, check_lessons, check_precision, layered
from training.env.config import EnvConfig
from training.env.core import observation_space
from training.env.masks import action_masks
from training.env.supply import training_seed
from training.env.vector import FactoryVectorEnv
from training.evaluate import SOLVED, torch_heads, validation
from training.improvement import improved_episodes
from training.lessons import generate
from training.model import FactoredDistribution, precision_autocast
from training.runs import Run
from training.sft import LESSON_KINDS, ImitationStream, SFTConfig, loss_and_metrics, run_progress


@dataclass
class SelfImitationConfig:
    """Self-imitation of solved sampled episodes, from a pre-trained policy."""

    init: Path | None = None
    """The policy to start from (a `training.sft` or `training.ppo` checkpoint); required."""
    name: str = ""
    """Run folder name under `root` (default: self-<date>-<time>)."""
    root: Path = Path("runs")
    """Where run folders go."""
    size: int = 11
    """Grid side of the lessons."""
    kinds: tuple[str, ...] = (*LESSON_KINDS, "trial-1")
    """Lesson kinds to sample episodes of (and to validate on)."""
    weight_floor: float = 0.05
    """Least weight of a kind when drawing episodes (the weight is 1 - its starting validation score)."""
    minutes: float = 0.0
    """Wall-time limit in minutes (0: none)."""
    steps: int = 2000
    """Optimizer steps (the run also stops after `minutes`)."""
    collect: str = "sampled"
    """Which episodes to imitate: "sampled" (sampled episodes that solved their lesson) or
    "improved" (`training.improvement`: failed greedy rollouts with the one choice changed
    that makes them score best, on fresh training lessons)."""
    num_envs: int = 256
    """Episodes sampled side by side ("sampled")."""
    lessons_per_collect: int = 32
    """Fresh training lessons whose greedy rollouts are improved per round ("improved")."""
    alternatives: int = 3
    """Next most likely actions tried at every state of a failed greedy rollout ("improved")."""
    solved_only: bool = True
    """Keep only changes that solve the lesson ("improved")."""
    margin: float = 0.05
    """Without solved_only, the least gain in score over the greedy rollout for an improved
    episode to be kept ("improved")."""
    keep_solved: bool = True
    """Also imitate the greedy rollouts that solved their lesson ("improved"): what already
    works is kept without the reference imitation, whose layouts may not be the policy's."""
    collect_steps: int = 8
    """Env steps of every env between rounds of optimizer steps ("sampled")."""
    updates_per_collect: int = 4
    """Optimizer steps per round."""
    batch_size: int = 128
    """Buffer steps per optimizer step."""
    buffer: int = 50_000
    """Steps of solved episodes kept (the oldest go first)."""
    balance_kinds: bool = True
    """Draw every lesson kind held in the buffer as often as any other (else every step alike)."""
    min_buffer: int = 1_000
    """Steps in the buffer before training starts."""
    expert_batch: int = 64
    """Reference imitation samples per optimizer step (0: none)."""
    expert_weight: float = 0.5
    """Weight of the reference imitation's loss."""
    expert_kinds: tuple[str, ...] = SFTConfig.expert_kinds
    """Kinds whose reference is the expert's layout (`training.sft.expert_solution`)."""
    pool: int = 16
    """Lessons per kind in the reference imitation's pool (`training.sft.LessonPool`)."""
    lr: float = 1e-4
    """Adam learning rate, decayed linearly to 5% over the run."""
    max_grad_norm: float = 1.0
    """Gradient norm clip."""
    val_every: int = 200
    """Validate every this many optimizer steps, and at the end."""
    val_seeds: int = 8
    """Held-out seeds per kind for validation."""
    log_every: int = 20
    """Log metrics every this many optimizer steps."""
    seed: int = 0
    """Seed of the envs, the sampling and the buffer's draws."""
    threads: int = 2
    """torch CPU threads."""
    precision: str = "auto"
    """auto, fp32 or bf16 (as `training.ppo`'s): bf16 autocast of the network's trunk, by
    default where the CPU runs bf16 natively (AMX or AVX-512 BF16)."""
    env_threads: int = 2
    """Mimic threads of the vector env."""


def parse_config(argv: list[str] | None = None) -> SelfImitationConfig:
    """SelfImitationConfig from its defaults, then `--config FILE.yaml`, then the other flags."""
    return layered(SelfImitationConfig, argv, "python -m training.self_imitation", __doc__.split("\n\n")[0])


COLLECT = ("sampled", "improved")


class NothingToImitate(RuntimeError):
    """The policy solved too few episodes in the time given to fill the buffer."""


class SolvedEpisodes:
    """The steps of every env's current episode, and a ring buffer of the steps of the
    episodes that solved their lesson."""

    def __init__(
        self, num_envs: int, max_steps: int, world_shape: tuple[int, ...], mask_shape: tuple[int, ...], capacity: int
    ) -> None:
        self.current_worlds = np.zeros((num_envs, max_steps, *world_shape), np.int16)
        self.current_masks = np.zeros((num_envs, max_steps, *mask_shape), np.int8)
        self.current_actions = np.zeros((num_envs, max_steps, 5), np.int64)
        self.length = np.zeros(num_envs, np.int64)
        self.worlds = np.zeros((capacity, *world_shape), np.int16)
        self.masks = np.zeros((capacity, *mask_shape), np.int8)
        self.actions = np.zeros((capacity, 5), np.int64)
        self.kinds = np.zeros(capacity, np.int64)  # the lesson kind of each step, as a number
        self.size = 0  # steps held
        self.next = 0  # where the next step goes

    def record(self, worlds: np.ndarray, masks: np.ndarray, actions: np.ndarray) -> None:
        """One step of every env: the world and mask it acted on, and its action."""
        envs = np.arange(len(worlds))
        at = self.length
        self.current_worlds[envs, at], self.current_masks[envs, at], self.current_actions[envs, at] = (
            worlds,
            masks,
            actions,
        )
        self.length += 1

    def end(self, envs: np.ndarray, solved: np.ndarray, kinds: np.ndarray | None = None) -> None:
        """Episodes of `envs` ended with their last recorded step; keep those `solved`
        (`kinds`: each episode's lesson kind as a number, for `sample`'s balance)."""
        kinds = np.zeros(len(envs), np.int64) if kinds is None else kinds
        for env, kind in zip(envs[solved], kinds[solved], strict=True):
            n = int(self.length[env])
            self.add(self.current_worlds[env, :n], self.current_masks[env, :n], self.current_actions[env, :n], kind)
        self.length[envs] = 0

    def add(self, worlds: np.ndarray, masks: np.ndarray, actions: np.ndarray, kind: int) -> None:
        """One whole episode's steps, of lesson kind number `kind`, into the buffer."""
        capacity = len(self.actions)
        where = (self.next + np.arange(len(actions))) % capacity
        self.worlds[where], self.masks[where], self.actions[where], self.kinds[where] = worlds, masks, actions, kind
        self.next = int((self.next + len(actions)) % capacity)
        self.size = min(capacity, self.size + len(actions))

    def sample(
        self, rng: np.random.Generator, count: int, balanced: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`count` steps from the buffer (worlds, masks, actions); when `balanced`, every
        kind held as likely as any other: the easy kinds' many successes would otherwise
        crowd out the hard kinds' few, which are the ones worth learning. Else every step
        alike."""
        held = self.kinds[: self.size]
        weight = 1.0 / np.bincount(held)[held] if balanced else np.ones(self.size)
        picked = rng.choice(self.size, size=count, p=weight / weight.sum())
        return self.worlds[picked], self.masks[picked], self.actions[picked]


def train(config: SelfImitationConfig) -> dict[str, Any]:
    """Run self-imitation as configured; returns the summary it also writes to the run folder."""
    if config.init is None:
        raise ConfigError("--init is required: self-imitation starts from a policy that solves some lessons")
    check_lessons(config.size, config.kinds, config.val_seeds)
    check_precision(config.precision)
    if config.collect not in COLLECT:
        raise ConfigError(f"collect must be one of {', '.join(COLLECT)}, not {config.collect!r}")
    if config.lessons_per_collect < 1 or config.alternatives < 1:
        raise ConfigError("lessons_per_collect and alternatives must be at least 1")
    reference_kinds = tuple(k for k in config.kinds if k in LESSON_KINDS)  # trials have no reference
    if config.expert_batch and not reference_kinds:
        raise ConfigError("expert_batch needs a non-trial kind among kinds (or set it to 0)")
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    policy, _ = load(config.init)
    name = config.name or time.strftime("self-%Y%m%d-%H%M%S")
    config = replace(config, name=name)
    run = Run.create(name, config, root=config.root)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
    autocast = precision_autocast(torch.device("cpu"), config.precision)
    state = {"size": config.size, "config": asdict(config)}

    def checkpoint(path: str, **extra: Any) -> None:
        save(run.checkpoints / path, policy, **state, **extra, optimizer=optimizer.state_dict())

    start = time.perf_counter()
    first = validation(policy, config.kinds, config.val_seeds, config.size)
    best = first["val/mean_score"]
    checkpoint("best.pt", step=0, val_score=best)  # the starting policy is a candidate too
    run.log(0, first)
    history: list[dict[str, float]] = [{"step": 0, **first}]
    weights = {k: max(config.weight_floor, 1.0 - first[f"val/{k}"]) for k in config.kinds}
    env = None  # "improved" plays no env
    if config.collect == "sampled":
        env = FactoryVectorEnv(
            num_envs=config.num_envs,
            size=config.size,
            kinds=config.kinds,
            weights=weights,
            threads=config.env_threads,
            copy=False,
        )
        env.reset(seed=config.seed)
    spaces = observation_space(config.size)
    world_shape, mask_shape = spaces["world"].shape, spaces["action_mask"].shape
    assert world_shape is not None and mask_shape is not None
    envs = config.num_envs if env is not None else 1
    episodes = SolvedEpisodes(envs, EnvConfig(size=config.size).steps, world_shape, mask_shape, config.buffer)
    tried = dict.fromkeys(config.kinds, 0)
    solved = dict.fromkeys(config.kinds, 0)
    gained = dict.fromkeys(config.kinds, 0)  # "improved": lessons with an improved episode

    heads = torch_heads(policy)  # float32, as greedy rollouts are evaluated
    kind_weights = np.array([weights[k] for k in config.kinds])

    def collect_improved() -> int:
        """Improve the greedy rollouts of fresh training lessons; the env steps they took."""
        kinds = rng.choice(len(config.kinds), size=config.lessons_per_collect, p=kind_weights / kind_weights.sum())
        seeds = [training_seed(int(i)) for i in rng.integers(0, 2**31, size=config.lessons_per_collect)]
        lessons = [generate(config.kinds[k], int(seed), config.size) for k, seed in zip(kinds, seeds, strict=True)]
        improved, played = improved_episodes(heads, lessons, config.alternatives, config.margin, config.solved_only)
        for greedy in played:
            tried[greedy.lesson.kind] += 1
            solved[greedy.lesson.kind] += int(greedy.score >= SOLVED)
        for episode in improved:
            gained[episode.lesson.kind] += 1
        kept = improved + [g for g in played if g.score >= SOLVED] if config.keep_solved else improved
        for episode in kept:
            kind = config.kinds.index(episode.lesson.kind)
            episodes.add(episode.worlds, action_masks(episode.worlds), episode.actions, kind)
        return sum(len(e.actions) for e in played)

    def collect() -> int:
        """Play the envs `collect_steps` steps; the env steps they took."""
        if env is None:
            return collect_improved()
        policy.eval()
        for _ in range(config.collect_steps):
            with torch.inference_mode(), autocast:
                features = policy.features(torch.from_numpy(env.worlds))
                dist = FactoredDistribution.from_features(
                    policy, features, torch.from_numpy(env.masks), torch.from_numpy(env.done_masks)
                )
                action = dist.sample()
            episodes.record(env.worlds, env.masks, action.numpy())
            _, _, _, _, info = env.step(action.numpy())
            if "_final_obs" in info:
                ended = np.flatnonzero(info["_final_obs"])
                final = info["final_info"]
                won = final["score"][ended] >= SOLVED
                episodes.end(ended, won, np.array([config.kinds.index(k) for k in final["kind"][ended]]))
                for kind, w in zip(final["kind"][ended], won, strict=True):
                    tried[kind] += 1
                    solved[kind] += int(w)
        return config.collect_steps * config.num_envs

    reference = (
        ImitationStream(
            reference_kinds,
            config.size,
            config.expert_batch,
            np.random.default_rng([config.seed, 2]),  # its own: the stream's thread draws from it
            config.pool,
            config.expert_kinds,
        )
        if config.expert_batch
        else None
    )
    env_steps, step, last_steps, last_time = 0, 0, 0, time.perf_counter()
    bar = tqdm(total=config.steps, desc=name, unit="step", dynamic_ncols=True)

    def out_of_time() -> bool:
        return config.minutes > 0 and time.perf_counter() - start > 60 * config.minutes

    done = False
    while not done:
        env_steps += collect()
        if episodes.size < config.min_buffer:
            bar.set_postfix(buffer=episodes.size)
            if out_of_time():
                raise NothingToImitate(
                    f"the buffer held {episodes.size} steps of solved episodes after {config.minutes} minutes, short "
                    f"of min_buffer {config.min_buffer}: the policy solves too few of {', '.join(config.kinds)}"
                )
            continue
        for _ in range(config.updates_per_collect):
            step += 1
            for group in optimizer.param_groups:
                group["lr"] = config.lr * max(0.05, 1.0 - run_progress(step, time.perf_counter() - start, config))
            worlds, masks, actions = episodes.sample(rng, config.batch_size, config.balance_kinds)
            policy.train()
            with autocast:
                features = policy.features(torch.from_numpy(worlds))
                dist = FactoredDistribution.from_features(policy, features, torch.from_numpy(masks))
                self_loss = -dist.log_prob(torch.from_numpy(actions)).mean()
                metrics: dict[str, float] = {"losses/self": float(self_loss.detach())}
                loss = self_loss
                if reference is not None:
                    expert_loss, expert_metrics = loss_and_metrics(policy, reference.next())
                    loss = loss + config.expert_weight * expert_loss
                    metrics.update(expert_metrics)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            optimizer.step()
            bar.update()
            done = step >= config.steps or out_of_time()
            validating = step % config.val_every == 0 or done
            if step % config.log_every == 0 or validating:
                now = time.perf_counter()
                metrics["charts/env_steps_per_s"] = (env_steps - last_steps) / (now - last_time)
                metrics["charts/learning_rate"] = optimizer.param_groups[0]["lr"]
                metrics["charts/buffer"] = episodes.size
                metrics["collect/episodes"] = sum(tried.values())
                for kind in config.kinds:
                    if tried[kind]:
                        metrics[f"collect/solved_{kind}"] = solved[kind] / tried[kind]
                        if config.collect == "improved":
                            metrics[f"collect/improved_{kind}"] = gained[kind] / tried[kind]
                for counts in (tried, solved, gained):
                    counts.update(dict.fromkeys(counts, 0))
                if validating:
                    metrics.update(validation(policy, config.kinds, config.val_seeds, config.size))
                    if metrics["val/mean_score"] > best:
                        best = metrics["val/mean_score"]
                        checkpoint("best.pt", step=step, val_score=best)
                run.log(env_steps, metrics)
                history.append({"step": step, **metrics})
                last_steps, last_time = env_steps, time.perf_counter()
                bar.set_postfix(loss=f"{metrics['losses/self']:.3f}", buffer=episodes.size, val=f"{best:.3f}")
            if done:
                break
    bar.close()
    if reference is not None:
        reference.close()
    checkpoint("latest.pt", step=step, val_score=best)
    summary = {
        "steps": step,
        "env_steps": env_steps,
        "minutes": (time.perf_counter() - start) / 60,
        "start_val_mean_score": first["val/mean_score"],
        "best_val_mean_score": best,
        "weights": weights,
        "final": history[-1],
    }
    run.summary(summary)
    run.close()
    return summary


def main(argv: list[str] | None = None) -> int:
    try:
        summary = train(parse_config(argv))
    except (ConfigError, CheckpointError, FileExistsError, NothingToImitate) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"best validation mean score {summary['best_val_mean_score']:.3f} "
        f"(from {summary['start_val_mean_score']:.3f}) after {summary['steps']} steps"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
