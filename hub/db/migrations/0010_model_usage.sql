-- Model tokens spent outside the agent's replies (the rolling summaries), so
-- that cost analytics count everything a company's agents cost. Replies keep
-- their usage on the message itself (messages.model, prompt_tokens, ...).

CREATE TABLE model_usage (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id         uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    agent_id           uuid,
    -- Goes with its conversation (retention), as the replies' usage does.
    conversation_id    uuid REFERENCES conversations (id) ON DELETE CASCADE,
    purpose            text NOT NULL,  -- 'summary'
    model              text NOT NULL,
    prompt_tokens      integer NOT NULL,
    completion_tokens  integer NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_usage_company_created_idx ON model_usage (company_id, created_at);
SELECT syntera_enable_tenancy('model_usage');
