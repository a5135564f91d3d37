-- With digests on, a sender first looks for a due webhook or inbox delivery, then for a mailbox. On the
-- due index alone that first look walked every due email to find none (O(backlog) per delivery, so a
-- sender that fell behind fell further behind); the few other deliveries get an index of their own.
CREATE INDEX delivery_due_not_email ON delivery (next_attempt_at, id) WHERE state = 'pending' AND channel <> 'email';
