"""Factorion's inference server: FastAPI `POST /plan`, the planner and the RCON bridge.

Built by the inference-server issue; the mimic it verifies plans with already lives in
`training.sim` (importable without torch).
"""
