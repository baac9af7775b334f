-- wrk script for the create-message case of bench/run.sh: every request is a
-- POST of one user message (the thread is in the URL given to wrk). The
-- Authorization and OpenAI-Beta headers come from wrk's -H options, which
-- are the same for assistd and the nginx baseline.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"role":"user","content":"Benchmark message written by wrk: the quick brown fox jumps over the lazy dog."}'
