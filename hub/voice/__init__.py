"""Voice on LiveKit, the hub's side: who may join which room (tokens), which
agent joins it (dispatch, with claims the worker can trust), and which phone
numbers reach which company's agent (SIP trunks and dispatch rules). The voice
agent itself lives in agents_runtime.voice."""
