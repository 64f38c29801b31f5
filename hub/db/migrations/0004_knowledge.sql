-- The knowledge base: documents and their chunks, vectors included.
-- PostgreSQL is the truth; FAISS indexes in memory are a cache of `embedding`.

CREATE TABLE documents (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id    uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    -- Attached to one agent, or (NULL) shared by all the company's agents.
    agent_id      uuid REFERENCES agents (id) ON DELETE CASCADE,
    title         text NOT NULL,
    description   text,
    filename      text,
    content_type  text,
    size          integer NOT NULL,
    -- The original file, so that a reprocess or a model change can run again.
    file          bytea NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'processing', 'processed', 'failed')),
    error         text,
    chunk_count   integer NOT NULL DEFAULT 0,
    attempts      integer NOT NULL DEFAULT 0,
    -- A processor holds a document until then; past it, another takes over.
    lease_until   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz
);
CREATE INDEX documents_company_created_idx ON documents (company_id, created_at DESC);
CREATE INDEX documents_queue_idx ON documents (created_at) WHERE status IN ('pending', 'processing');
SELECT syntera_enable_tenancy('documents');

CREATE TABLE chunks (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- FAISS needs 64-bit integer ids.
    vector_id        bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    company_id       uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    document_id      uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    agent_id         uuid,  -- copied from the document, for filtering
    position         integer NOT NULL,
    page             integer,
    heading          text,
    content          text NOT NULL,
    token_count      integer NOT NULL,
    embedding_model  text NOT NULL,
    embedding        real[] NOT NULL,
    tsv              tsvector GENERATED ALWAYS AS (
                         to_tsvector('english', coalesce(heading, '') || ' ' || content)
                     ) STORED
);
CREATE INDEX chunks_document_idx ON chunks (document_id, position);
CREATE INDEX chunks_company_model_idx ON chunks (company_id, embedding_model);
CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);
SELECT syntera_enable_tenancy('chunks');
