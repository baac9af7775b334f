/*
 * fuzz_chat_stream.c -- libFuzzer target for the chat-completions stream
 * parser (src/run/chat_stream.c).
 *
 * The input is an upstream response body. It is fed whole, one byte at a
 * time and in pieces whose sizes come from a PRNG seeded by a hash of the
 * input; the three runs must agree exactly: return codes of feed and finish,
 * error message and code, the callback transcript (hashed) and the whole
 * accumulated turn (hashed). Small limits make the AD_ETOOBIG paths
 * reachable. A fourth run makes the n-th callback fail and checks that the
 * failure is returned, sticks, and that nothing is called after it. The same
 * bytes are also folded with ad_cs_feed_completion.
 *
 * Every run checks the invariants the engine relies on: on_tool_call_start
 * once per slot and before that slot's arguments, indices inside ncalls,
 * pieces never empty; on success the text pieces concatenate to turn.text
 * and each started slot's pieces to its args, and a slot is started exactly
 * when it has a name; all strings are valid UTF-8 and within their limits;
 * ad_cs_finish succeeds only after [DONE] or a finish_reason; an error always
 * has a non-empty message, and success has none.
 *
 * The parser folds common chunks with a hand-written fast path and the rest
 * with jansson; the fast path must be invisible. So the whole-feed, the
 * PRNG-pieces and the failing-callback runs are repeated with
 * ad_cs_set_fast(cs, false) and must agree exactly with the default runs.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "run/chat_stream.h"
#include "util/str.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)

static const ad_cs_limits LIM = {.max_event = 4096, .max_text = 8192, .max_args = 2048};

typedef struct track {
    uint64_t hash; /* FNV-1a of the transcript */
    ad_buf text;   /* text pieces, concatenated */
    ad_buf args[AD_CS_MAX_TOOL_CALLS];
    bool started[AD_CS_MAX_TOOL_CALLS];
    char name[AD_CS_MAX_TOOL_CALLS][64]; /* name given to on_tool_call_start (prefix) */
    size_t calls;
    size_t fail_at; /* fail the n-th callback (1-based); 0 never */
    bool failed;
} track;

static void mix(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        *h ^= s[i];
        *h *= 1099511628211ull;
    }
}

static void mix_str(uint64_t *h, const char *s)
{
    mix(h, s, strlen(s) + 1);
}

static ad_err next_call(track *t)
{
    CHECK(!t->failed);
    if (++t->calls == t->fail_at) {
        t->failed = true;
        return AD_EIO;
    }
    return AD_OK;
}

static ad_err on_text(void *ud, const char *piece, size_t len)
{
    track *t = ud;
    CHECK(piece != NULL && len > 0);
    CHECK(ad_utf8_valid(piece, len));
    mix(&t->hash, "T", 1);
    mix(&t->hash, &len, sizeof len);
    mix(&t->hash, piece, len);
    CHECK(ad_buf_add(&t->text, piece, len) == AD_OK);
    return next_call(t);
}

static ad_err on_start(void *ud, int index, const char *id, const char *name)
{
    track *t = ud;
    CHECK(index >= 0 && index < AD_CS_MAX_TOOL_CALLS);
    CHECK(!t->started[index]);
    CHECK(id != NULL && name != NULL && name[0] != '\0');
    CHECK(ad_utf8_valid(id, strlen(id)) && ad_utf8_valid(name, strlen(name)));
    t->started[index] = true;
    ad_strlcpy(t->name[index], name, sizeof t->name[index]);
    mix(&t->hash, "S", 1);
    mix(&t->hash, &index, sizeof index);
    mix_str(&t->hash, id);
    mix_str(&t->hash, name);
    return next_call(t);
}

static ad_err on_args(void *ud, int index, const char *piece, size_t len)
{
    track *t = ud;
    CHECK(index >= 0 && index < AD_CS_MAX_TOOL_CALLS);
    CHECK(t->started[index]);
    CHECK(piece != NULL && len > 0);
    mix(&t->hash, "A", 1);
    mix(&t->hash, &index, sizeof index);
    mix(&t->hash, &len, sizeof len);
    mix(&t->hash, piece, len);
    CHECK(ad_buf_add(&t->args[index], piece, len) == AD_OK);
    return next_call(t);
}

static const ad_cs_callbacks CB = {on_text, on_start, on_args};

static void track_init(track *t, size_t fail_at)
{
    memset(t, 0, sizeof *t);
    t->hash = 1469598103934665603ull;
    t->fail_at = fail_at;
    ad_buf_init(&t->text, 1 << 20);
    for (int i = 0; i < AD_CS_MAX_TOOL_CALLS; i++)
        ad_buf_init(&t->args[i], 1 << 20);
}

static void track_free(track *t)
{
    ad_buf_free(&t->text);
    for (int i = 0; i < AD_CS_MAX_TOOL_CALLS; i++)
        ad_buf_free(&t->args[i]);
}

static bool cstr_ok(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    return n < cap && ad_utf8_valid(s, n);
}

static bool buf_ok(const ad_buf *b)
{
    return b->len <= b->max && (b->ptr == NULL ? b->len == 0 : b->ptr[b->len] == '\0') &&
           ad_utf8_valid(ad_buf_str(b), b->len);
}

/* Checks the turn and the transcript; returns a hash of the turn. */
static uint64_t check_turn(const ad_cs *cs, const track *t, ad_err rc, ad_err frc)
{
    const ad_cs_turn *turn = ad_cs_result(cs);
    uint64_t h = 1469598103934665603ull;
    const char *err = ad_cs_error(cs);
    const char *code = ad_cs_error_code(cs);
    CHECK(err != NULL && code != NULL);
    CHECK(cstr_ok(err, 512) && cstr_ok(code, 64));
    if (rc == AD_OK && frc == AD_OK)
        CHECK(err[0] == '\0' && code[0] == '\0');
    if (rc != AD_OK || frc != AD_OK)
        CHECK(err[0] != '\0');
    if (rc != AD_OK)
        CHECK(frc == rc); /* sticky */
    if (frc == AD_OK)
        CHECK(turn->done || turn->finish_reason[0]);
    if (code[0])
        CHECK(frc == AD_ESTATE);

    CHECK(buf_ok(&turn->text) && turn->text.len <= LIM.max_text);
    CHECK(buf_ok(&turn->refusal) && turn->refusal.len <= LIM.max_text);
    CHECK(cstr_ok(turn->finish_reason, sizeof turn->finish_reason));
    CHECK(cstr_ok(turn->model, sizeof turn->model));
    CHECK(cstr_ok(turn->id, sizeof turn->id));
    if (strcmp(turn->finish_reason, "content_filter") == 0)
        CHECK(turn->content_filtered);
    if (!turn->have_usage)
        CHECK(turn->prompt_tokens == 0 && turn->completion_tokens == 0 && turn->total_tokens == 0);
    CHECK(turn->prompt_tokens >= 0 && turn->completion_tokens >= 0 && turn->total_tokens >= 0);
    CHECK(turn->ncalls >= 0 && turn->ncalls <= AD_CS_MAX_TOOL_CALLS);

    bool ok = rc == AD_OK && frc == AD_OK;
    if (ok && !t->failed) {
        CHECK(t->text.len == turn->text.len &&
              memcmp(ad_buf_str(&t->text), ad_buf_str(&turn->text), t->text.len) == 0);
    }
    for (int i = 0; i < AD_CS_MAX_TOOL_CALLS; i++) {
        const ad_cs_tool_call *c = &turn->calls[i];
        if (i >= turn->ncalls) {
            CHECK(c->id.len == 0 && c->name.len == 0 && c->args.len == 0);
            CHECK(!t->started[i]);
            continue;
        }
        CHECK(buf_ok(&c->id) && buf_ok(&c->name) && buf_ok(&c->args));
        CHECK(c->args.len <= LIM.max_args);
        CHECK(strlen(ad_buf_str(&c->id)) == c->id.len);
        CHECK(strlen(ad_buf_str(&c->name)) == c->name.len);
        CHECK(cstr_ok(c->type, sizeof c->type));
        if (t->started[i])
            CHECK(strncmp(t->name[i], ad_buf_str(&c->name), strlen(t->name[i])) == 0);
        if (ok && !t->failed) {
            CHECK(t->started[i] == (c->name.len > 0));
            if (t->started[i])
                CHECK(t->args[i].len == c->args.len &&
                      memcmp(ad_buf_str(&t->args[i]), ad_buf_str(&c->args), c->args.len) == 0);
        }
        mix(&h, &i, sizeof i);
        mix_str(&h, ad_buf_str(&c->id));
        mix_str(&h, ad_buf_str(&c->name));
        mix_str(&h, c->type);
        mix(&h, ad_buf_str(&c->args), c->args.len + 1);
    }
    mix(&h, ad_buf_str(&turn->text), turn->text.len + 1);
    mix(&h, ad_buf_str(&turn->refusal), turn->refusal.len + 1);
    mix_str(&h, turn->finish_reason);
    mix_str(&h, turn->model);
    mix_str(&h, turn->id);
    int64_t nums[4] = {turn->prompt_tokens, turn->completion_tokens, turn->total_tokens,
                       turn->ncalls};
    mix(&h, nums, sizeof nums);
    bool flags[3] = {turn->have_usage, turn->content_filtered, turn->done};
    mix(&h, flags, sizeof flags);
    mix_str(&h, err);
    mix_str(&h, code);
    return h;
}

typedef struct outcome {
    ad_err feed_rc, finish_rc;
    uint64_t transcript, turn;
    size_t calls;
} outcome;

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* mode 0: whole; 1: bytewise; 2: PRNG pieces. */
static outcome run(const uint8_t *data, size_t size, int mode, uint32_t seed, size_t fail_at,
                   bool fast)
{
    static track t; /* large: keep it off the stack */
    track_init(&t, fail_at);
    ad_cs *cs = ad_cs_new(&LIM, &CB, &t);
    ad_cs_set_fast(cs, fast);
    outcome o = {AD_OK, AD_OK, 0, 0, 0};
    size_t pos = 0;
    while (pos < size) {
        size_t k = size - pos;
        if (mode == 1)
            k = 1;
        else if (mode == 2)
            k = 1 + xorshift(&seed) % 64;
        if (k > size - pos)
            k = size - pos;
        ad_err rc = ad_cs_feed(cs, (const char *)data + pos, k);
        pos += k;
        if (rc) {
            o.feed_rc = rc;
            CHECK(ad_cs_feed(cs, "x", 1) == rc); /* sticky */
            break;
        }
    }
    o.finish_rc = ad_cs_finish(cs);
    if (o.finish_rc == AD_OK)
        CHECK(ad_cs_finish(cs) == AD_OK);
    o.turn = check_turn(cs, &t, o.feed_rc, o.finish_rc);
    o.transcript = t.hash;
    o.calls = t.calls;
    if (t.failed)
        CHECK((o.feed_rc == AD_EIO || o.finish_rc == AD_EIO) && o.finish_rc == AD_EIO);
    ad_cs_free(cs);
    track_free(&t);
    return o;
}

static void same(const outcome *a, const outcome *b)
{
    CHECK(a->feed_rc == b->feed_rc);
    CHECK(a->finish_rc == b->finish_rc);
    CHECK(a->transcript == b->transcript);
    CHECK(a->turn == b->turn);
    CHECK(a->calls == b->calls);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = 1469598103934665603ull;
    mix(&h, data, size);
    uint32_t seed = (uint32_t)(h ^ (h >> 32)) | 1;

    outcome whole = run(data, size, 0, 0, 0, true);
    outcome bytes = run(data, size, 1, 0, 0, true);
    outcome rnd = run(data, size, 2, seed, 0, true);
    same(&whole, &bytes);
    same(&whole, &rnd);
    outcome slow = run(data, size, 0, 0, 0, false);
    same(&whole, &slow);
    slow = run(data, size, 2, seed, 0, false);
    same(&whole, &slow);

    if (whole.calls > 0) {
        size_t at = 1 + (size_t)(h % whole.calls);
        outcome f = run(data, size, 2, seed, at, true);
        CHECK(f.calls == at);
        CHECK(f.finish_rc == AD_EIO);
        outcome g = run(data, size, 0, 0, at, false);
        same(&f, &g);
    }

    /* the same bytes as a non-streaming body */
    static track t;
    track_init(&t, 0);
    ad_cs *cs = ad_cs_new(&LIM, &CB, &t);
    ad_err rc = ad_cs_feed_completion(cs, (const char *)data, size);
    ad_err frc = ad_cs_finish(cs);
    if (rc == AD_OK)
        CHECK(ad_cs_result(cs)->done && frc == AD_OK);
    check_turn(cs, &t, rc, frc);
    ad_cs_free(cs);
    track_free(&t);
    return 0;
}
