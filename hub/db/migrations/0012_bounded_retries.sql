-- Nothing is retried for ever: what recovers a job counts how often it did, and
-- gives up with a recorded, visible failure past a small limit.

-- How many times `hub.lifecycle.recover_turns` queued this user message's turn
-- again; past the limit the turn is recorded as failed (a system notice).
ALTER TABLE messages ADD COLUMN turn_recoveries smallint NOT NULL DEFAULT 0;

-- How many times a runner that stopped (died, or crashed inside the engine)
-- left this execution to be taken over; past the limit it ends `failed`.
ALTER TABLE workflow_executions ADD COLUMN takeovers smallint NOT NULL DEFAULT 0;

-- How many times the timer queued this outbox event again; past the limit the
-- event's workflows get a `failed` execution that says why, and it leaves the outbox.
ALTER TABLE workflow_events ADD COLUMN attempts smallint NOT NULL DEFAULT 0;
