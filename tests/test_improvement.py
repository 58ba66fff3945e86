"""Rollout policy improvement: the improved episodes are real episodes of the env, start
where the greedy rollout stood, and score what they claim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.env.core import place, reasons
from training.evaluate import SOLVED, rollout, score_worlds
from training.improvement import greedy_episodes, improved_episodes
from training.lessons import generate
from training.onnx_policy import OnnxPolicy

DEFAULT_POLICY = Path(__file__).parents[1] / "server" / "policies" / "default.onnx"


@pytest.fixture(scope="module")
def heads() -> OnnxPolicy:
    return OnnxPolicy(DEFAULT_POLICY, threads=1)


def _play(world: np.ndarray, actions: np.ndarray) -> list[np.ndarray]:
    """The worlds an episode passes through from `world`: before each action, then the last."""
    h, w = world.shape[1:]
    current, seen = world[None].copy(), []
    only = np.zeros(1, np.int64)
    for action in actions:
        seen.append(current[0].copy())
        if action[0] < h * w and reasons(current, only, action[None]) == -1:
            place(current, only, action[None])
    return [*seen, current[0]]


def test_greedy_episodes_record_the_greedy_rollout(heads: OnnxPolicy) -> None:
    lessons = [generate(kind, 7, 11) for kind in ("belt-routing", "split", "machine")]
    tasks = np.stack([lesson.task.data for lesson in lessons])
    final = rollout(heads.heads, tasks)
    assert final is not None
    episodes, finals = greedy_episodes(heads.heads, tasks)
    assert (finals == final).all()
    for i, (worlds, actions) in enumerate(episodes):
        assert (worlds[0] == tasks[i]).all()
        assert actions[-1, 0] == 11 * 11 or len(actions) == 11 * 11 // 2  # to "done" or the step limit
        played = _play(worlds[0], actions)
        assert all((a == b).all() for a, b in zip(played[:-1], worlds, strict=True))
        assert (played[-1] == final[i]).all()


def test_improved_episodes_start_on_the_greedy_path_and_score_what_they_claim(heads: OnnxPolicy) -> None:
    lessons = [generate("split", seed, 11) for seed in range(1000, 1006)]
    improved, played = improved_episodes(heads.heads, lessons, alternatives=2)
    assert [p.lesson for p in played] == lessons and improved  # this policy fails some of these, and a fix exists
    paths, _ = greedy_episodes(heads.heads, np.stack([lesson.task.data for lesson in lessons]))
    for path, greedy in zip(paths, played, strict=True):
        assert (path[0] == greedy.worlds).all() and (path[1] == greedy.actions).all()
        assert (
            greedy.score
            == greedy.greedy_score
            == score_worlds([greedy.lesson], _play(path[0][0], path[1])[-1][None])[0]
        )
    for episode in improved:
        lesson = lessons.index(episode.lesson)
        assert episode.greedy_score == played[lesson].score < SOLVED
        assert episode.score >= episode.greedy_score + 0.05
        assert episode.score >= SOLVED  # only changes that solve are kept, by default
        start = episode.worlds[0]
        step = next(t for t, world in enumerate(paths[lesson][0]) if (start == world).all())  # greedy passed it
        assert step + len(episode.actions) <= 11 * 11 // 2  # within the env's step limit
        replayed = _play(start, episode.actions)
        assert all((a == b).all() for a, b in zip(replayed[:-1], episode.worlds, strict=True))
        final_score = score_worlds([episode.lesson], replayed[-1][None])[0]
        assert final_score == pytest.approx(episode.score)
        # from its second step on the episode is greedy again
        assert (greedy_episodes(heads.heads, replayed[1][None])[0][0][1] == episode.actions[1:]).all()


def test_solved_lessons_give_no_episode(heads: OnnxPolicy) -> None:
    lessons = [generate("one-belt", seed, 11) for seed in range(3)]
    improved, played = improved_episodes(heads.heads, lessons)
    assert all(p.score >= SOLVED for p in played) and improved == []
