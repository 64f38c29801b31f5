-- Workflows (a trigger and a node/edge graph) and their executions.

CREATE TABLE workflows (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id      uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    name            text NOT NULL,
    description     text,
    enabled         boolean NOT NULL DEFAULT true,
    trigger_type    text NOT NULL CHECK (trigger_type IN (
                        'conversation_started', 'message_received', 'conversation_ended',
                        'contact_created', 'contact_updated', 'deal_created',
                        'deal_stage_changed', 'webhook', 'schedule')),
    trigger_config  jsonb NOT NULL DEFAULT '{}',
    nodes           jsonb NOT NULL DEFAULT '[]',
    edges           jsonb NOT NULL DEFAULT '[]',
    -- Bumped whenever the trigger or the graph changes; executions record it.
    version         integer NOT NULL DEFAULT 1,
    -- Signs outbound webhooks and verifies the inbound webhook trigger.
    secret          text NOT NULL,
    -- Schedule triggers: when the next run is due; claimed by bumping it.
    next_run_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflows_company_created_idx ON workflows (company_id, created_at, id);
CREATE INDEX workflows_trigger_idx ON workflows (company_id, trigger_type) WHERE enabled;
CREATE INDEX workflows_schedule_idx ON workflows (next_run_at)
    WHERE enabled AND trigger_type = 'schedule';
SELECT syntera_enable_tenancy('workflows');

CREATE TABLE workflow_executions (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id         uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    workflow_id        uuid NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    workflow_version   integer NOT NULL,
    status             text NOT NULL DEFAULT 'running'
                       CHECK (status IN ('running', 'success', 'failed', 'cancelled')),
    -- A dry run (POST /api/workflows/:id/test): simulated, nothing written but this row.
    test               boolean NOT NULL DEFAULT false,
    triggered_by       text NOT NULL,
    trigger_data       jsonb NOT NULL DEFAULT '{}',
    -- What started it (an event id, a message id, a scheduled minute, a webhook's
    -- idempotency key): a redelivered trigger finds its execution instead of
    -- starting a second one.
    dedupe_key         text,
    -- How many workflow executions led to this one (a workflow whose action
    -- fires a trigger); bounded, so a workflow cannot trigger itself forever.
    depth              smallint NOT NULL DEFAULT 0,
    -- The graph as it was when the execution started: editing a workflow does
    -- not change executions already waiting on a delay.
    graph              jsonb NOT NULL,
    -- Where the run stands: variables, node outputs, nodes done and to do.
    state              jsonb NOT NULL DEFAULT '{}',
    trace              jsonb NOT NULL DEFAULT '[]',
    error              text,
    -- Waiting on a delay node until then (status stays running).
    resume_at          timestamptz,
    -- A running execution belongs to whoever holds this token until lease_until;
    -- a job to run it carries the token, and an expired lease is taken over.
    lease_token        text,
    lease_until        timestamptz,
    execution_time_ms  integer NOT NULL DEFAULT 0,
    executed_at        timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    UNIQUE (workflow_id, dedupe_key)
);
CREATE INDEX workflow_executions_workflow_idx
    ON workflow_executions (workflow_id, executed_at DESC, id DESC);
CREATE INDEX workflow_executions_due_idx ON workflow_executions (resume_at)
    WHERE status = 'running' AND resume_at IS NOT NULL;
CREATE INDEX workflow_executions_running_idx ON workflow_executions (lease_until)
    WHERE status = 'running' AND resume_at IS NULL;
SELECT syntera_enable_tenancy('workflow_executions');

-- The outbox of events that start workflows: written in the transaction of the
-- change itself (only when the company has an enabled workflow for it), taken
-- by the engine in the transaction that starts the executions. What a crash or
-- a lost job leaves here is queued again by the engine's timer.
CREATE TABLE workflow_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id    uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    trigger_type  text NOT NULL,
    event_id      text NOT NULL,
    subject       text NOT NULL,  -- the job key: a conversation's events run in order with its turns
    data          jsonb NOT NULL,
    depth         smallint NOT NULL DEFAULT 0,
    -- Queued at commit; queued again by the timer after this, if still here.
    retry_at      timestamptz NOT NULL DEFAULT now() + interval '30 seconds',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflow_events_retry_idx ON workflow_events (retry_at);
SELECT syntera_enable_tenancy('workflow_events');
