-- Contacts, conversations, messages, ratings and notifications.

CREATE TABLE contacts (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id    uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    email         text,
    first_name    text,
    last_name     text,
    company_name  text,
    phone         text,
    tags          text[] NOT NULL DEFAULT '{}',
    metadata      jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX contacts_company_email_key ON contacts (company_id, lower(email))
    WHERE email IS NOT NULL;
CREATE INDEX contacts_company_created_idx ON contacts (company_id, created_at DESC, id DESC);
SELECT syntera_enable_tenancy('contacts');

CREATE TABLE conversations (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id            uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    -- Conversations outlive the agent or contact they were with: analytics keep counting them.
    agent_id              uuid REFERENCES agents (id) ON DELETE SET NULL,
    contact_id            uuid REFERENCES contacts (id) ON DELETE SET NULL,
    channel               text NOT NULL DEFAULT 'chat' CHECK (channel IN ('chat', 'voice', 'phone')),
    status                text NOT NULL DEFAULT 'active'
                          CHECK (status IN ('active', 'ended', 'archived')),
    started_at            timestamptz NOT NULL DEFAULT now(),
    ended_at              timestamptz,
    last_message_at       timestamptz,
    tags                  text[] NOT NULL DEFAULT '{}',
    metadata              jsonb NOT NULL DEFAULT '{}',
    -- The last seq handed out; the row lock taken to bump it keeps seq gap-free.
    last_seq              integer NOT NULL DEFAULT 0,
    -- When the oldest user message still waiting for a reply arrived; a reply
    -- records its response time against it (see messages.response_ms).
    awaiting_reply_since  timestamptz,
    -- A person has taken over (or the AI handed off): the AI stays silent.
    ai_paused             boolean NOT NULL DEFAULT false,
    handoff_requested_at  timestamptz,
    -- Rolling summary of the messages up to summary_seq, for long conversations.
    summary               text,
    summary_seq           integer NOT NULL DEFAULT 0
);
CREATE INDEX conversations_company_started_idx ON conversations (company_id, started_at DESC, id DESC);
CREATE INDEX conversations_company_status_idx ON conversations (company_id, status, started_at DESC);
CREATE INDEX conversations_company_agent_idx ON conversations (company_id, agent_id, started_at DESC);
CREATE INDEX conversations_contact_idx ON conversations (contact_id) WHERE contact_id IS NOT NULL;
SELECT syntera_enable_tenancy('conversations');

CREATE TABLE messages (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id       uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq              integer NOT NULL,
    sender_type      text NOT NULL CHECK (sender_type IN ('user', 'agent', 'human', 'system')),
    -- The staff user (human) or the agent (agent) who wrote it.
    sender_id        uuid,
    content          text NOT NULL,
    attachments      jsonb NOT NULL DEFAULT '[]',
    ai_metadata      jsonb,
    metadata         jsonb NOT NULL DEFAULT '{}',
    -- A client's own id for the message, so a retried send is stored once.
    client_id        text,
    -- Agent replies: ms since the user message they answer (precomputed at
    -- insert, so response-time analytics never replay whole conversations).
    response_ms      integer,
    -- Copied out of ai_metadata at insert: cost analytics read them from an
    -- index instead of parsing JSON across a million rows.
    model              text,
    prompt_tokens      integer,
    completion_tokens  integer,
    -- The user message an AI reply (or its failure notice) answers: at most
    -- one per user message, however often a turn is delivered.
    reply_to         uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_reply_to_key ON messages (conversation_id, reply_to)
    WHERE reply_to IS NOT NULL;
CREATE UNIQUE INDEX messages_client_id_key ON messages (conversation_id, client_id)
    WHERE client_id IS NOT NULL;
CREATE INDEX messages_agent_usage_idx ON messages (company_id, created_at)
    INCLUDE (sender_id, model, prompt_tokens, completion_tokens, response_ms)
    WHERE sender_type = 'agent';
SELECT syntera_enable_tenancy('messages');

CREATE TABLE conversation_ratings (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id       uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    conversation_id  uuid NOT NULL UNIQUE REFERENCES conversations (id) ON DELETE CASCADE,
    rating           smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment          text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversation_ratings_company_idx ON conversation_ratings (company_id, created_at);
SELECT syntera_enable_tenancy('conversation_ratings');

CREATE TABLE notifications (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id  uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL,
    type        text NOT NULL,
    title       text NOT NULL,
    body        text,
    data        jsonb NOT NULL DEFAULT '{}',
    read        boolean NOT NULL DEFAULT false,
    read_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_user_idx ON notifications (company_id, user_id, created_at DESC, id DESC);
CREATE INDEX notifications_unread_idx ON notifications (company_id, user_id) WHERE NOT read;
SELECT syntera_enable_tenancy('notifications');
