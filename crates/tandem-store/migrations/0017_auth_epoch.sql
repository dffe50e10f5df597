-- A counter every change to who-may-do-what bumps in the changing transaction: a token
-- revoked, a user's role, access, expiry or disabled flag changed. Servers that cache
-- "token → principal" compare it at most once a second and drop their cache when it moved.
CREATE TABLE auth_epoch (
    id BIGINT PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO auth_epoch (id, generation) VALUES (1, 0);
