-- CSV ticket import (issue #5): which rows of which source were imported into a client (the
-- key is the source's own id, or a fingerprint of the row), the column mapping each client
-- saved, and the files uploaded through the web UI between the mapping form and the commit.

CREATE TABLE ticket_import_keys (
    client_id TEXT NOT NULL REFERENCES clients(id),
    import_key TEXT NOT NULL,
    ticket_id TEXT NOT NULL REFERENCES tickets(id),
    imported_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, import_key)
);
CREATE INDEX ticket_import_keys_ticket ON ticket_import_keys (ticket_id);

CREATE TABLE ticket_import_mappings (
    client_id TEXT PRIMARY KEY REFERENCES clients(id),
    mapping TEXT NOT NULL,
    updated_by TEXT NOT NULL REFERENCES users(id),
    updated_at BIGINT NOT NULL
);

CREATE TABLE ticket_import_uploads (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id),
    uploaded_by TEXT NOT NULL REFERENCES users(id),
    uploaded_at BIGINT NOT NULL,
    file_name TEXT NOT NULL,
    content TEXT NOT NULL
);
CREATE INDEX ticket_import_uploads_age ON ticket_import_uploads (uploaded_at);
