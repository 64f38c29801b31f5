-- Voice: the phone numbers routed to a company's agent through LiveKit SIP.

CREATE TABLE voice_numbers (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id            uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    agent_id              uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    phone_number          text NOT NULL CHECK (phone_number ~ '^\+[1-9][0-9]{6,14}$'),
    -- LiveKit's ids for the inbound trunk and dispatch rule that route the number.
    sip_trunk_id          text,
    sip_dispatch_rule_id  text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
-- A number reaches one company only. The index is global: constraint checks see
-- every tenant's rows, which row-level security hides from queries.
CREATE UNIQUE INDEX voice_numbers_number_key ON voice_numbers (phone_number);
CREATE INDEX voice_numbers_company_idx ON voice_numbers (company_id, agent_id);
SELECT syntera_enable_tenancy('voice_numbers');

-- Voice replies carry their per-turn latency in ai_metadata; voice analytics
-- read those replies, and only those, through this index.
CREATE INDEX messages_voice_latency_idx ON messages (company_id, created_at)
    WHERE sender_type = 'agent' AND ai_metadata ? 'latency';
