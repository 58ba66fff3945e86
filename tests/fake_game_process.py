"""A fake Factorio game in a process of its own: the real mod's Lua (`FakeFactorio`)
behind a real RCON socket (`FakeRconServer`), ticking on its own as a game does.

    python -m tests.fake_game_process --password SECRET [--players 1] [--ups 60]

prints `port N` once it listens on 127.0.0.1:N, then serves until its stdin closes (the
test that started it ends). Console commands reach the mod as the game's RCON would
send them. A test plays the players through one more command, which the game does not
have: `/fake-test {"do": ..., ...}` answers JSON (see `act`).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from tests.fake_factorio import FakeFactorio
from tests.fake_rcon import FakeRconServer

TEST_COMMAND = "/fake-test "


def act(game: FakeFactorio, action: dict[str, Any]) -> Any:
    """What a test asks of the game: a player's action, or a look at the map."""
    what = action["do"]
    player = action.get("player", 1)
    if what == "select_area":
        x1, y1, x2, y2 = action["area"]
        game.select_area(player, action["item"], x1, y1, x2, y2, action.get("alt", False))
    elif what == "click":
        game.click(player, action["x"], action["y"], action["item"])
    elif what == "choose_item":  # in the tools' window: the item of new sources or sinks
        game.raise_event("on_lua_shortcut", player_index=player, prototype_name="factorion-tools")
        with game.lock:
            choices = game.fake.players[player].gui.screen.factorion_frame.factorion_choices
            chooser = choices[f"factorion_{action['kind']}_item"]
            chooser.elem_value = action["item"]
        game.raise_event("on_gui_elem_changed", player_index=player, element=chooser)
        game.raise_event("on_lua_shortcut", player_index=player, prototype_name="factorion-tools")  # closed again
    elif what == "setting":
        with game.lock:
            game.fake.players[player].mod_settings[action["name"]].value = action["value"]
    elif what == "request_plan":
        game.raise_event("factorion-request-plan", player_index=player)
    elif what == "create":
        game.create(action["name"], action["x"], action["y"])
    elif what == "entities":
        return game.entities()
    elif what == "printed":
        return game.printed(player)
    elif what == "overlaps":
        with game.lock:
            return len(game.fake.overlaps)
    else:
        raise ValueError(f"no such test action {what!r}")
    return None


def handler(game: FakeFactorio) -> Any:
    def handle(text: str) -> str:
        if text.startswith(TEST_COMMAND):
            try:
                return json.dumps({"ok": True, "value": act(game, json.loads(text[len(TEST_COMMAND) :]))})
            except Exception as error:  # the test reads it, rather than a dead socket
                return json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"})
        return game.command(text)

    return handle


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fake_game_process", description=__doc__.split("\n\n")[0])
    p.add_argument("--password", required=True)
    p.add_argument("--players", type=int, default=1)
    p.add_argument("--ups", type=float, default=60.0, help="game ticks per second")
    args = p.parse_args(argv)
    game = FakeFactorio(players=args.players)
    stop = threading.Event()

    def run_ticks() -> None:
        while not stop.wait(1 / args.ups):
            game.tick()

    with FakeRconServer(args.password, handler(game)) as server:
        threading.Thread(target=run_ticks, name="ticks", daemon=True).start()
        print(f"port {server.port}", flush=True)
        sys.stdin.read()  # until the test closes our stdin or ends
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
