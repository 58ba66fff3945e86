"""Rollout policy improvement: where a greedy rollout fails, find a better choice by trying
the policy's next most likely actions and playing each out greedily.

A greedy rollout that fails its lesson went wrong at some step. At the states it passed
through, `improved_episodes` tries the policy's `alternatives` next most likely actions
(its most likely tiles other than the greedy one, each with the greedy rest of the
action, as the beam search expands), plays each out greedily within the env's step
limit, and scores the final layouts in the mimic. The best of these changes, found
from the first states on, is where the policy should have chosen otherwise, if it
solves the lesson (or, unless `solved_only`, beats the greedy rollout by `margin`):
the *improved episode* is that change, then the greedy rollout that followed it.

This is one step of policy iteration with greedy rollouts as the evaluation (the policy
that picks the best-looking of its top actions is at least as good as greedy), and
imitating the improved episodes teaches the greedy policy to make those choices.
Unlike the reference imitation, every target is reachable by the policy's own later
choices: it learns where to put the splitter or the machine *it* can wire up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from training.env.core import place, reasons
from training.env.masks import rollout_masks
from training.evaluate import SOLVED, HeadsFn, rollout, score_worlds
from training.lessons import Lesson
from training.onnx_policy import expansions


@dataclass
class Episode:
    """The steps of an improved episode of `lesson`: worlds int16[N, 6, H, W] the policy
    acted on and its actions int64[N, 5] there, and the scores of the greedy rollout and
    of the improved episode."""

    lesson: Lesson
    worlds: np.ndarray
    actions: np.ndarray
    greedy_score: float
    score: float


def greedy_episodes(
    heads: HeadsFn, tasks: np.ndarray, max_steps: int | None = None
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Greedy rollouts from `tasks` (int16[B, 6, H, W]) by `training.evaluate.rollout`,
    recording each one's steps: (worlds int16[N, 6, H, W] acted on, actions int64[N, 5]),
    the last action "done" unless the step limit (`max_steps`, default the env's
    H * W // 2) came first; and the final worlds."""
    states = [np.array(tasks, copy=True)]
    taken: list[np.ndarray] = []
    final = rollout(heads, tasks, max_steps=max_steps, states=states, taken=taken)
    assert final is not None  # no deadline
    b = len(tasks)
    actions = np.stack(taken, axis=1) if taken else np.zeros((b, 0, 5), np.int64)  # [B, steps, 5]
    # [B, steps, 6, H, W]: the world each action met
    worlds = np.stack(states[:-1], axis=1) if taken else np.zeros((b, 0, *tasks.shape[1:]), tasks.dtype)
    lengths = (actions[:, :, 0] >= 0).sum(axis=1)
    return [(worlds[i, :n], actions[i, :n]) for i, n in enumerate(lengths)], final


def improved_episodes(
    heads: HeadsFn,
    lessons: Sequence[Lesson],
    alternatives: int = 3,
    margin: float = 0.05,
    solved_only: bool = True,
    wave: int = 4,
    chunk: int = 1024,
) -> tuple[list[Episode], list[Episode]]:
    """The improved episode of every lesson whose greedy rollout failed and where one of
    the policy's `alternatives` next most likely actions at some state, played out
    greedily within the env's step limit, solves the lesson (or, unless `solved_only`,
    scores at least `margin` more); all lessons share one grid size. And the greedy
    rollouts, one per lesson (`greedy_score` and `score` both theirs).

    States are tried `wave` steps at a time from the first, and a lesson's search stops at
    the first wave where an alternative solves it: most failures go wrong early, where the
    splitter or the machine goes. The change kept is the best-scoring one tried (the
    earliest on ties). Alternatives are played `chunk` worlds at a time."""
    tasks = np.stack([lesson.task.data for lesson in lessons])
    limit = tasks.shape[2] * tasks.shape[3] // 2  # the env's step limit, as in `rollout`

    def steps_left(step: int) -> int:
        """Steps a rollout may take after a change at `step`: those left after the last
        state of its wave (a little short for the wave's earlier states), so that every
        change is played out alike and within the env's step limit."""
        return max(0, limit - (step // wave + 1) * wave)

    episodes, finals = greedy_episodes(heads, tasks)
    greedy = score_worlds(lessons, finals)
    failed = [i for i in range(len(lessons)) if greedy[i] < SOLVED]
    candidates = {i: _expansions(heads, episodes[i][0], alternatives + 1) for i in failed}
    best: dict[int, tuple[float, int, np.ndarray]] = {}  # lesson -> (score, step, action) of its best change
    longest = max((len(episodes[i][1]) for i in failed), default=0)
    for first in range(0, longest, wave):
        searching = [i for i in failed if i not in best or best[i][0] < SOLVED]
        branches = [
            (i, step, candidates[i][0][step, rank])
            for i in searching
            for step in range(first, min(first + wave, len(episodes[i][1])))
            for rank in range(1, alternatives + 1)  # rank 0 is the greedy action
            if np.isfinite(candidates[i][1][step, rank])
        ]
        for start in range(0, len(branches), chunk):
            part = branches[start : start + chunk]
            worlds = np.stack([episodes[i][0][step] for i, step, _ in part])
            finals = _play_out(heads, worlds, np.stack([a for *_, a in part]), steps_left(first))
            for (i, step, action), score in zip(
                part, score_worlds([lessons[i] for i, *_ in part], finals), strict=True
            ):
                if i not in best or score > best[i][0] + 1e-9:
                    best[i] = (float(score), step, action)
    improved = [
        _improved(heads, lessons[i], episodes[i][0][step], action, greedy[i], score, steps_left(step))
        for i, (score, step, action) in sorted(best.items())
        if score >= SOLVED or (not solved_only and score >= greedy[i] + margin)
    ]
    played = [
        Episode(lesson, worlds, actions, float(score), float(score))
        for lesson, (worlds, actions), score in zip(lessons, episodes, greedy, strict=True)
    ]
    return improved, played


def _expansions(heads: HeadsFn, worlds: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """`training.onnx_policy.expansions` of `worlds` under the env's masks."""
    masks, done_masks = rollout_masks(worlds)
    return expansions(heads(worlds), masks, width, done_masks)


def _play_out(heads: HeadsFn, worlds: np.ndarray, actions: np.ndarray, max_steps: int) -> np.ndarray:
    """The final worlds of playing each of `actions` in its world, then greedily to the
    end (at most `max_steps` steps more)."""
    h, w = worlds.shape[2:]
    worlds = worlds.copy()
    placing = np.flatnonzero(actions[:, 0] < h * w)  # "done" ends the episode where it stands
    legal = placing[reasons(worlds, placing, actions[placing]) == -1]
    place(worlds, legal, actions[legal])
    played = rollout(heads, worlds[legal], max_steps=max_steps)
    assert played is not None  # no deadline
    worlds[legal] = played
    return worlds


def _improved(
    heads: HeadsFn,
    lesson: Lesson,
    world: np.ndarray,
    action: np.ndarray,
    greedy_score: float,
    score: float,
    max_steps: int,
) -> Episode:
    """The episode from `world`: `action`, then the greedy rollout after it (at most
    `max_steps` steps)."""
    h, w = world.shape[1:]
    child = world[None].copy()
    only = np.zeros(1, np.int64)
    if action[0] < h * w and reasons(child, only, action[None]) == -1:
        place(child, only, action[None])
    rest_worlds, rest_actions = (
        greedy_episodes(heads, child, max_steps)[0][0] if action[0] < h * w else (child[:0], action[None][:0])
    )
    return Episode(
        lesson=lesson,
        worlds=np.concatenate([world[None], rest_worlds]),
        actions=np.concatenate([action[None], rest_actions]),
        greedy_score=greedy_score,
        score=score,
    )
