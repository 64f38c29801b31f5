-- Deals. (Contacts are in 0002: conversations point at them.)

CREATE TABLE deals (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id           uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    -- A deal outlives its contact's erasure (GDPR): the amounts stay in the
    -- pipeline's totals, the person does not.
    contact_id           uuid REFERENCES contacts (id) ON DELETE SET NULL,
    title                text NOT NULL,
    value                numeric(14, 2) NOT NULL DEFAULT 0 CHECK (value >= 0),
    currency             text NOT NULL DEFAULT 'USD',
    stage                text NOT NULL DEFAULT 'lead' CHECK (stage IN
                             ('lead', 'qualified', 'proposal', 'negotiation',
                              'closed_won', 'closed_lost')),
    probability          smallint NOT NULL DEFAULT 10 CHECK (probability BETWEEN 0 AND 100),
    expected_close_date  date,
    metadata             jsonb NOT NULL DEFAULT '{}',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    closed_at            timestamptz
);
CREATE INDEX deals_company_created_idx ON deals (company_id, created_at DESC, id DESC);
CREATE INDEX deals_company_stage_idx ON deals (company_id, stage, created_at DESC);
CREATE INDEX deals_contact_idx ON deals (contact_id) WHERE contact_id IS NOT NULL;
SELECT syntera_enable_tenancy('deals');

-- closed_at follows the stage: stamped when a deal reaches a closed stage,
-- cleared when it is reopened.
CREATE FUNCTION deals_closed_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.stage IN ('closed_won', 'closed_lost') THEN
        IF TG_OP = 'INSERT' OR OLD.stage IS DISTINCT FROM NEW.stage THEN
            NEW.closed_at := now();
        END IF;
    ELSE
        NEW.closed_at := NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER deals_closed_at BEFORE INSERT OR UPDATE ON deals
    FOR EACH ROW EXECUTE FUNCTION deals_closed_at();
