-- The scope agreement: the provider-wide domain catalog, versioned agreements per client,
-- and in-app notifications (proposals and their outcomes reach both sides).

CREATE TABLE it_domains (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    position BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

INSERT INTO it_domains (key, name, description, position, created_at) VALUES
    ('helpdesk', 'Helpdesk and user support', 'Password resets, how-to questions, printers, new starters and leavers.', 1, 0),
    ('security_monitoring', 'Security monitoring and endpoint detection', 'EDR, alert triage, suspicious sign-ins, threat hunting.', 2, 0),
    ('patching', 'Patch management', 'Operating system and third-party updates, maintenance windows, reboots.', 3, 0),
    ('backup', 'Backup and recovery verification', 'Backup jobs, test restores, recovery evidence.', 4, 0),
    ('after_hours_monitoring', 'After-hours monitoring', 'Watching alerts outside business hours and paging who is on call.', 5, 0),
    ('compliance', 'Compliance documentation and audit preparation', 'Policies, evidence, control ownership, auditor requests.', 6, 0),
    ('cloud_m365', 'Cloud and Microsoft 365 administration', 'Tenants, licences, mailboxes, conditional access, SharePoint.', 7, 0),
    ('onsite_hardware', 'On-site hardware and physical infrastructure', 'Desks, printers, cabling, racks, hands on keyboards.', 8, 0),
    ('network', 'Network', 'Firewalls, switches, Wi-Fi, VPN, the ISP circuit.', 9, 0),
    ('vendors', 'Vendor relationships', 'Line-of-business software vendors, ISP, hardware suppliers, renewals.', 10, 0),
    ('vcio', 'vCIO and strategic planning', 'Roadmaps, budgets, vendor evaluations, quarterly reviews.', 11, 0),
    ('incident_response', 'Incident response', 'Ransomware, compromised accounts, lost devices: leading the response.', 12, 0);

CREATE TABLE agreement_versions (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id),
    number BIGINT NOT NULL,
    status TEXT NOT NULL,
    content_json TEXT NOT NULL,
    based_on BIGINT,
    author_side TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    proposed_by TEXT,
    proposed_at BIGINT,
    decided_by TEXT,
    decided_side TEXT,
    decided_at BIGINT,
    decision_comment TEXT,
    effective_from BIGINT,
    acknowledgements_json TEXT NOT NULL DEFAULT '[]',
    UNIQUE (client_id, number)
);
CREATE INDEX agreement_versions_client ON agreement_versions (client_id, status, effective_from);

CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    client_id TEXT REFERENCES clients(id),
    message TEXT NOT NULL,
    link TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    read_at BIGINT
);
CREATE INDEX notifications_user ON notifications (user_id, created_at);
