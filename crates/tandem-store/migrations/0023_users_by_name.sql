-- Lists of users are sorted by display name (issue #2): with this index a page is read in
-- order and stops at its limit, instead of every user the grant reaches being sorted first.
CREATE INDEX users_by_name ON users (display_name, id);
