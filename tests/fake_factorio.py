"""A fake Factorio 2.0 game that runs the real Factorion mod (mod/factorion) under Lua 5.2.

`FakeFactorio()` loads the mod's settings and prototypes in a data stage, then its
`control.lua` in a runtime stage against `tests/fake_factorio.lua`, a strict fake of
the API it uses (surfaces and `create_entity` with 2.0 parameter names, ghosts,
`storage`, `commands`, `remote`, `rcon.print`, `helpers.table_to_json`/`json_to_table`
(through Python's json), `defines`, events, players, GUI, rendering, settings).

- `command("/factorion-poll")` runs a console command as RCON would and returns what
  the mod `rcon.print`ed (lines joined), like the game's RCON reply.
- `raise_event(name, **data)`, `select_area(...)`, `tick(n)` drive the game.
- `entities()` lists what stands on a surface; `printed(i)` what player i was told.
- `reload()` simulates loading a save: control.lua runs again in the same Lua state
  (game unavailable), then on_load; `storage_snapshot()` serialises storage to compare.

Every call holds one lock, so an RCON server thread and the test can share the game.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import lupa.lua52 as lua52

ROOT = Path(__file__).resolve().parent.parent
MOD_DIR = ROOT / "mod" / "factorion"
FAKE_LUA = Path(__file__).with_name("fake_factorio.lua")


def lua_to_py(value: Any) -> Any:
    """A Lua value as table_to_json sees it: arrays 1..n as lists, an empty table as {},
    whole numbers as ints. Functions and userdata are refused, as the game does."""
    kind = lua52.lua_type(value)
    if kind == "table":
        items = list(value.items())
        if not items:
            return {}
        keys = [k for k, _ in items]
        if all(isinstance(k, int) and not isinstance(k, bool) for k in keys) and sorted(keys) == list(
            range(1, len(keys) + 1)
        ):
            return [lua_to_py(v) for _, v in sorted(items, key=lambda kv: kv[0])]
        return {_key(k): lua_to_py(v) for k, v in items}
    if kind is not None:
        raise TypeError(f"table_to_json cannot write a Lua {kind}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _key(key: Any) -> str:
    if isinstance(key, float) and key.is_integer():
        key = int(key)
    return str(key)


class FakeFactorio:
    """One game: the nauvis surface, players, the mod loaded and initialised."""

    def __init__(self, mod_dir: Path = MOD_DIR, players: int = 1) -> None:
        self.mod_dir = mod_dir
        self.lock = threading.RLock()
        self.prototypes, self.setting_specs = load_prototypes(mod_dir)
        self.lua = lua52.LuaRuntime(unpack_returned_tuples=True)
        py = self.lua.table_from({"table_to_json": self._table_to_json, "json_to_table": self._json_to_table})
        defaults = self.lua.table_from(
            {
                name: self.lua.table_from({"setting_type": spec["setting_type"], "value": spec["default_value"]})
                for name, spec in self.setting_specs.items()
            }
        )
        self.fake = self.lua.execute(FAKE_LUA.read_text(), py, defaults)
        for name, proto in self.prototypes.items():
            if proto["type"] == "custom-input":
                self.fake.custom_inputs[name] = True
        self.lua.globals().package.path = f"{mod_dir}/?.lua"
        self._game = self.lua.globals().game
        for i in range(players):
            self.fake.add_player(f"player{i + 1}", i == 0)
        self._load_control()
        self.lua.globals().game = self._game
        self.fake.init_handler()

    # ------------------------------------------------------------------ stages

    def _load_control(self) -> None:
        # control.lua runs before `game` exists, as in the game
        globals_ = self.lua.globals()
        globals_.game = None
        loaded = globals_.package.loaded
        for name in [k for k in loaded.keys() if str(k) == "control" or str(k).startswith("scripts.")]:
            loaded[name] = None
        self.lua.execute('require("control")')

    def reload(self) -> None:
        """Load the save again: fresh handlers, control.lua re-run, on_load (no game)."""
        with self.lock:
            for table in (self.fake.handlers, self.fake.commands, self.fake.interfaces):
                for key in list(table.keys()):
                    table[key] = None
            self.fake.load_handler = None
            self._load_control()
            if self.fake.load_handler is not None:
                self.fake.load_handler()
            self.lua.globals().game = self._game

    # ------------------------------------------------------------------ driving

    def command(self, text: str) -> str:
        """Run a console command from RCON; the reply is what rcon.print wrote."""
        with self.lock:
            self.fake.rcon_out = self.lua.table()
            if not text.startswith("/"):
                self._game.print(text)
                return ""
            name, _, parameter = text[1:].partition(" ")
            handler = self.fake.commands[name]
            if handler is None:
                return f'Unknown command "{name}".'
            event = {"name": name, "tick": self.fake.tick}
            if parameter:
                event["parameter"] = parameter
            handler(self.lua.table_from(event))
            return "\n".join(self.fake.rcon_out.values())

    def player_command(self, player_index: int, text: str) -> str:
        """A player types a command in the console (no RCON: the reply goes nowhere)."""
        with self.lock:
            self.fake.rcon_out = self.lua.table()
            name, _, parameter = text[1:].partition(" ")
            event = {"name": name, "tick": self.fake.tick, "player_index": player_index}
            if parameter:
                event["parameter"] = parameter
            self.fake.commands[name](self.lua.table_from(event))
            return "\n".join(self.fake.rcon_out.values())

    def raise_event(self, event: str | int, **data: Any) -> None:
        with self.lock:
            key = (
                self.lua.globals().defines.events[event]
                if isinstance(event, str) and event.startswith("on_")
                else event
            )
            handler = self.fake.handlers[key]
            if handler is None:
                return
            payload = self.lua.table_from({**data, "name": key, "tick": self.fake.tick})
            handler(payload)

    def select_area(
        self,
        player_index: int,
        item: str,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        alt: bool = False,
        surface: str = "nauvis",
    ) -> None:
        """The player drags (or clicks, when the area is tiny) with a selection tool on
        `surface` (made on first use)."""
        area = self.lua.table_from(
            {
                "left_top": self.lua.table_from({"x": x1, "y": y1}),
                "right_bottom": self.lua.table_from({"x": x2, "y": y2}),
            }
        )
        event = "on_player_alt_selected_area" if alt else "on_player_selected_area"
        self.raise_event(
            event,
            player_index=player_index,
            item=item,
            area=area,
            surface=self.fake.surfaces[surface] or self.fake.new_surface(surface),
            entities=self.lua.table(),
            tiles=self.lua.table(),
        )

    def click(self, player_index: int, tile_x: int, tile_y: int, item: str, alt: bool = False) -> None:
        self.select_area(player_index, item, tile_x + 0.3, tile_y + 0.3, tile_x + 0.31, tile_y + 0.31, alt)

    def tick(self, n: int = 1) -> None:
        with self.lock:
            on_tick = self.fake.handlers[self.lua.globals().defines.events.on_tick]
            for _ in range(n):
                self.fake.tick += 1
                if on_tick is not None:
                    on_tick(self.lua.table_from({"name": 0, "tick": self.fake.tick}))
                for n_ticks, handler in list(self.fake.nth_tick.items()):
                    if self.fake.tick % n_ticks == 0:
                        handler(self.lua.table_from({"nth_tick": n_ticks, "tick": self.fake.tick}))

    def run_until_idle(self, limit: int = 1000) -> int:
        """Tick until no build is in progress; the ticks it took."""
        for i in range(limit):
            with self.lock:
                if not len(self.lua.globals().storage.builds):
                    return i
            self.tick()
        raise AssertionError("builds still running after {limit} ticks")

    # ------------------------------------------------------------------ looking

    def create(self, name: str, x: float, y: float, direction: int = 0, force: str = "player") -> Any:
        """An entity placed by someone else (the test), on nauvis."""
        with self.lock:
            params = {"name": name, "position": self.lua.table_from({"x": x, "y": y}), "force": force}
            if direction:
                params["direction"] = direction
            return self.fake.nauvis.create_entity(self.lua.table_from(params))

    def entities(self) -> list[dict[str, Any]]:
        """Every entity on nauvis: name (inner name for ghosts), ghost, position, direction, extras."""
        with self.lock:
            out = []
            for e in self.fake.nauvis.find_entities_filtered(self.lua.table()).values():
                ghost = e.type == "entity-ghost"
                out.append(
                    {
                        "name": e.ghost_name if ghost else e.name,
                        "ghost": ghost,
                        "position": (lua_to_py(e.position.x), lua_to_py(e.position.y)),
                        "direction": lua_to_py(e.direction),
                        "type": e.belt_to_ground_type,
                        "recipe": e.recipe,
                        "unit_number": e.unit_number,
                        "force": e.force.name,
                        "undo_index": e.undo_index,
                    }
                )
            return out

    def printed(self, player_index: int = 1) -> list[str]:
        with self.lock:
            return list(self.fake.players[player_index].printed.values())

    def storage_snapshot(self) -> Any:
        """storage as plain data; game objects become '<entity N>' / '<render N>' markers."""
        with self.lock:
            return _snapshot(self.lua.globals().storage, set())

    def storage(self) -> Any:
        with self.lock:
            return self.lua.globals().storage

    # ------------------------------------------------------------------ JSON

    def _table_to_json(self, value: Any) -> str:
        return json.dumps(lua_to_py(value), separators=(",", ":"))

    def _json_to_table(self, text: Any) -> Any:
        try:
            data = json.loads(text)
        except (TypeError, ValueError):
            return None
        return self._to_lua(data)

    def _to_lua(self, data: Any) -> Any:
        if isinstance(data, dict):
            return self.lua.table_from({k: self._to_lua(v) for k, v in data.items() if v is not None})
        if isinstance(data, list):
            return self.lua.table_from([self._to_lua(v) for v in data])
        return data


def _snapshot(value: Any, seen: set[int]) -> Any:
    if lua52.lua_type(value) != "table":
        return value
    if value["unit_number"] is not None and value["surface"] is not None:
        return f"<entity {value['unit_number']}>"
    if value["kind"] is not None and value["params"] is not None:
        return f"<render {value['id']}>"
    if id(value) in seen:
        return "<cycle>"
    return {str(k): _snapshot(v, seen | {id(value)}) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}


def load_prototypes(mod_dir: Path = MOD_DIR) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Run settings.lua and data.lua in a data stage: (prototypes, settings) by name."""
    lua = lua52.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().package.path = f"{mod_dir}/?.lua"
    stage = lua.execute(
        """
        data = {raw = {}}
        function data.extend(self, list)
          assert(self == data, "data:extend, with a colon")
          for _, p in ipairs(list) do
            assert(type(p.type) == "string" and type(p.name) == "string", "a prototype needs type and name")
            data.raw[p.type] = data.raw[p.type] or {}
            assert(not data.raw[p.type][p.name], "duplicate prototype " .. p.name)
            data.raw[p.type][p.name] = p
          end
        end
        mods = {base = "2.0.0"}
        return data
        """
    )
    lua.execute(Path(mod_dir, "settings.lua").read_text())
    settings = {name: lua_to_py(p) for kind, group in stage.raw.items() for name, p in group.items()}
    lua.execute('require("data")')
    prototypes = {
        name: lua_to_py(p)
        for kind, group in stage.raw.items()
        for name, p in group.items()
        if not str(kind).endswith("-setting")
    }
    return prototypes, settings
