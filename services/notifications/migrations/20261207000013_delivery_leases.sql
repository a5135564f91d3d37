-- Leases: the delivery worker claims a batch of due deliveries in one statement, pushing their
-- next_attempt_at forward by the lease (so no one else finds them due) and writing its own claim token here.
-- Each outcome is recorded only while the row still carries that token; a lease that ran out (the worker
-- died or stalled) makes the row due again, and whoever claims it next overwrites the token. NULL: not
-- claimed, or claimed one row at a time under a row lock (the digest path).
ALTER TABLE delivery ADD COLUMN claim uuid;
