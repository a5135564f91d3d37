-- A delivery row is written three times (queued, claimed, sent) and its bodies (text and HTML, some 3 kB
-- together) went with every version: the heap grew by three copies of each email, outgrew shared buffers
-- within a minute at 1,000 emails/s, and the senders slowed as it did. Moving the bodies out of line as soon
-- as a row is toasted at all (rows over ~2 kB) leaves an 18-byte pointer per body in the row, which the
-- claim and outcome updates copy instead of the bodies.
ALTER TABLE delivery SET (toast_tuple_target = 256);
