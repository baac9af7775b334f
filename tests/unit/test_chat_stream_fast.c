/*
 * test_chat_stream_fast.c -- differential tests for the chunk fast path of
 * src/run/chat_stream.c.
 *
 * Design. The fast path may only ever be an optimisation, so every test here
 * runs the same body twice -- once as shipped (fast path on) and once with
 * ad_cs_set_fast(cs, false), where every chunk goes through jansson -- and
 * asserts that the two outcomes are byte-identical: feed/finish return codes,
 * error message and code, the transcript of every callback (text pieces,
 * tool-call starts and argument pieces, escaped) and the whole accumulated
 * turn (text, refusal, calls, finish_reason, usage, filter flag, done, model,
 * id). Each body is also run with small limits (so AD_ETOOBIG paths meet the
 * fast path) and with the n-th callback failing.
 *
 * Inputs: the chunk shapes of all four dialects the e2e fixture speaks
 * (OpenAI, Azure, vLLM, Ollama; see tests/e2e/lib/upstream.mjs), the fuzz
 * corpus, generated strings full of escapes (valid and invalid surrogates,
 * \u0000, bad hex, raw control bytes, invalid UTF-8), numbers, duplicate and
 * escaped keys, nesting, and every truncation plus many one-byte mutations
 * of typical chunks. Where a chunk is one the fast path is meant to take,
 * the tests also assert that it did (ad_cs_fast_count), so a path that
 * silently always falls back would fail.
 *
 * bench_fold_fast / bench_fold_slow fold 10,000 typical chunks each; they
 * are separate non-inlined functions so that callgrind can count them with
 * --toggle-collect (see the report of task R3).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run/chat_stream.h"
#include "util/str.h"

/* ---- recording ---- */

typedef struct rec {
    ad_buf log;
    int calls;
    int fail_at; /* 1-based callback that fails with AD_EIO; 0 never */
} rec;

static void esc(ad_buf *b, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == '\\' || c == '|')
            ad_buf_printf(b, "\\x%02x", c);
        else
            ad_buf_addc(b, (char)c);
    }
}

static ad_err next_call(rec *r)
{
    return ++r->calls == r->fail_at ? AD_EIO : AD_OK;
}

static ad_err on_text(void *ud, const char *piece, size_t len)
{
    rec *r = ud;
    ad_buf_addstr(&r->log, "T:");
    esc(&r->log, piece, len);
    ad_buf_addc(&r->log, '|');
    return next_call(r);
}

static ad_err on_start(void *ud, int index, const char *id, const char *name)
{
    rec *r = ud;
    ad_buf_printf(&r->log, "S%d:", index);
    esc(&r->log, id, strlen(id));
    ad_buf_addc(&r->log, ':');
    esc(&r->log, name, strlen(name));
    ad_buf_addc(&r->log, '|');
    return next_call(r);
}

static ad_err on_args(void *ud, int index, const char *piece, size_t len)
{
    rec *r = ud;
    ad_buf_printf(&r->log, "A%d:", index);
    esc(&r->log, piece, len);
    ad_buf_addc(&r->log, '|');
    return next_call(r);
}

static const ad_cs_callbacks CB = {on_text, on_start, on_args};
static const ad_cs_limits SMALL = {.max_event = 4096, .max_text = 24, .max_args = 16};

/* ---- running ---- */

typedef struct outcome {
    ad_buf snap;
    size_t fast;   /* chunks the fast path folded */
    int callbacks; /* callbacks made */
} outcome;

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Feeds s (whole when seed is 0, else in random pieces) and renders all. */
static outcome run1(const char *s, size_t n, bool fast, const ad_cs_limits *lim, uint32_t seed,
                    int fail_at)
{
    rec r;
    memset(&r, 0, sizeof r);
    ad_buf_init(&r.log, 16 << 20);
    r.fail_at = fail_at;
    ad_cs *cs = ad_cs_new(lim, &CB, &r);
    ad_cs_set_fast(cs, fast);
    ad_err frc = AD_OK;
    size_t pos = 0;
    while (pos < n && !frc) {
        size_t k = seed ? 1 + xorshift(&seed) % 37 : n - pos;
        if (k > n - pos)
            k = n - pos;
        char *piece = malloc(k); /* a private copy: no reading past the piece */
        memcpy(piece, s + pos, k);
        frc = ad_cs_feed(cs, piece, k);
        free(piece);
        pos += k;
    }
    ad_err erc = ad_cs_finish(cs);
    outcome o;
    o.fast = ad_cs_fast_count(cs);
    o.callbacks = r.calls;
    const ad_cs_turn *t = ad_cs_result(cs);
    ad_buf *b = &o.snap;
    ad_buf_init(b, 64 << 20);
    ad_buf_printf(b, "feed=%d finish=%d err=[", frc, erc);
    esc(b, ad_cs_error(cs), strlen(ad_cs_error(cs)));
    ad_buf_addstr(b, "] code=[");
    esc(b, ad_cs_error_code(cs), strlen(ad_cs_error_code(cs)));
    ad_buf_addstr(b, "]\nlog=");
    esc(b, ad_buf_str(&r.log), r.log.len);
    ad_buf_addstr(b, "\ntext=");
    esc(b, ad_buf_str(&t->text), t->text.len);
    ad_buf_addstr(b, "\nrefusal=");
    esc(b, ad_buf_str(&t->refusal), t->refusal.len);
    ad_buf_printf(b, "\nncalls=%d\n", t->ncalls);
    for (int i = 0; i < t->ncalls; i++) {
        const ad_cs_tool_call *c = &t->calls[i];
        ad_buf_printf(b, "call%d id=%s type=%s name=%s args=", i, ad_buf_str(&c->id), c->type,
                      ad_buf_str(&c->name));
        esc(b, ad_buf_str(&c->args), c->args.len);
        ad_buf_addc(b, '\n');
    }
    ad_buf_printf(
        b, "finish_reason=%s usage=%d/%lld/%lld/%lld filtered=%d done=%d\nmodel=", t->finish_reason,
        t->have_usage, (long long)t->prompt_tokens, (long long)t->completion_tokens,
        (long long)t->total_tokens, t->content_filtered, t->done);
    esc(b, t->model, strlen(t->model));
    ad_buf_addstr(b, " id=");
    esc(b, t->id, strlen(t->id));
    ad_cs_free(cs);
    ad_buf_free(&r.log);
    return o;
}

static size_t total_fast; /* over the whole test binary, to show the path ran */

/* Fast vs slow on one body under one configuration; returns the fast run's
 * fast-path count. */
static size_t diff1(const char *s, size_t n, const ad_cs_limits *lim, uint32_t seed, int fail_at)
{
    outcome f = run1(s, n, true, lim, seed, fail_at);
    outcome g = run1(s, n, false, lim, seed, fail_at);
    assert_int_equal(g.fast, 0);
    if (strcmp(ad_buf_str(&f.snap), ad_buf_str(&g.snap)) != 0) {
        fprintf(stderr, "input (%zu bytes): ", n);
        fwrite(s, 1, n, stderr);
        fprintf(stderr, "\n--- fast:\n%s\n--- slow:\n%s\n", ad_buf_str(&f.snap),
                ad_buf_str(&g.snap));
    }
    assert_string_equal(ad_buf_str(&f.snap), ad_buf_str(&g.snap));
    assert_int_equal(f.callbacks, g.callbacks);
    size_t fast = f.fast;
    total_fast += fast;
    ad_buf_free(&f.snap);
    ad_buf_free(&g.snap);
    return fast;
}

/* Every configuration: default and small limits, whole and in pieces, and
 * each of the first few callbacks failing. Returns the fast-path count of
 * the plain whole-feed run. */
static size_t diff(const char *s, size_t n)
{
    size_t fast = diff1(s, n, NULL, 0, 0);
    diff1(s, n, &SMALL, 0, 0);
    diff1(s, n, NULL, 7, 0);
    outcome o = run1(s, n, false, NULL, 0, 0);
    int calls = o.callbacks;
    ad_buf_free(&o.snap);
    for (int k = 1; k <= calls && k <= 4; k++)
        diff1(s, n, NULL, 0, k);
    return fast;
}

static size_t diffs(const char *s)
{
    return diff(s, strlen(s));
}

/* ---- chunk bytes of the four dialects (as tests/e2e/lib/upstream.mjs and
 * the real servers send them) ---- */

#define EV(json) "data: " json "\n\n"
#define DONE     "data: [DONE]\n\n"

#define OAI_H                                                                                      \
    "{\"id\":\"chatcmpl-abc123\",\"object\":\"chat.completion.chunk\",\"created\":1754911234,"     \
    "\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":"    \
    "\"fp_upstream01\",\"choices\":[{\"index\":0,\"delta\":"
#define OAI(delta, fr)                                                                             \
    EV(OAI_H delta ",\"logprobs\":null,\"finish_reason\":" fr "}],\"usage\":null,"                 \
                   "\"obfuscation\":\"xxx\"}")
#define AZ_CF                                                                                      \
    "{\"hate\":{\"filtered\":false,\"severity\":\"safe\"},\"self_harm\":{\"filtered\":false,"      \
    "\"severity\":\"safe\"},\"sexual\":{\"filtered\":false,\"severity\":\"safe\"},\"violence\":"   \
    "{\"filtered\":false,\"severity\":\"safe\"}}"
#define AZ(delta, fr, cf)                                                                          \
    EV("{\"id\":\"chatcmpl-az1\",\"object\":\"chat.completion.chunk\",\"created\":1754911234,"     \
       "\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_upstream01\",\"choices\":"     \
       "[{\"index\":0,\"delta\":" delta ",\"logprobs\":null,\"finish_reason\":" fr                 \
       ",\"content_filter_results\":" cf "}]}")
#define VLLM(delta, fr)                                                                            \
    EV("{\"id\":\"chatcmpl-vllm7\",\"object\":\"chat.completion.chunk\",\"created\":1754911234,"   \
       "\"model\":\"meta-llama/Llama-3.1-8B-Instruct\",\"choices\":[{\"index\":0,\"delta\":" delta \
       ",\"logprobs\":null,\"finish_reason\":" fr "}]}")
#define OLLAMA(delta, fr)                                                                          \
    EV("{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1754911234,"     \
       "\"model\":\"llama3.2\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,"    \
       "\"delta\":{\"role\":\"assistant\",\"content\":" delta "},\"finish_reason\":" fr "}]}")

static const char OPENAI[] = OAI("{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}",
                                 "null") OAI("{\"content\":\"Hello\"}", "null")
    OAI("{\"content\":\", w\\u00f6rld\\n\"}", "null")
        OAI("{\"content\":\"\\ud83d\\udc4b \\\"q\\\" \\/ \\\\ \\t\"}", "null") OAI("{}", "\"stop\"")
            EV("{\"id\":\"chatcmpl-abc123\",\"object\":\"chat.completion.chunk\",\"created\":"
               "1754911234,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{"
               "\"prompt_tokens\":10,\"completion_tokens\":4,\"total_tokens\":14}}") DONE;

static const char OPENAI_TOOLS[] = OAI(
    "{\"role\":\"assistant\",\"content\":null,\"refusal\":null,\"tool_calls\":[{\"index\":0,"
    "\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"\"}}]}",
    "null")
    OAI("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\"\"}}]}", "null")
        OAI("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]}", "null")
            OAI("{}", "\"tool_calls\"") DONE;

static const char AZURE[] =
    EV("{\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\","
       "\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{\"hate\":{"
       "\"filtered\":false,\"severity\":\"safe\"},\"jailbreak\":{\"filtered\":false,\"detected\":"
       "false}}}]}") AZ("{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}", "null", AZ_CF)
        AZ("{\"content\":\"Sure\"}", "null", AZ_CF) AZ("{\"content\":\", here\"}", "null", "{}")
            AZ("{\"content\":\" it is\"}", "null",
               "{\"hate\":{\"filtered\":true,\"severity\":\"medium\"}}") AZ("{}", "\"stop\"", AZ_CF)
                DONE;

static const char VLLM_TEXT[] = VLLM("{\"role\":\"assistant\",\"content\":\"\"}", "null")
    VLLM("{\"content\":\"The\"}", "null") VLLM("{\"content\":\" answer\"}", "null")
        VLLM("{\"reasoning_content\":\"hmm\",\"content\":\" is 42\"}", "null")
            VLLM("{\"tool_calls\":[{\"index\":0,\"id\":\"chatcmpl-tool-1\",\"type\":"
                 "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}",
                 "null") VLLM("{\"content\":\"\"}", "\"stop\"") DONE;

static const char OLLAMA_TEXT[] = OLLAMA("\"Hi\"", "null") OLLAMA("\" there\"", "null")
    OLLAMA("\"\\u00e9\\u0000!\"", "null") OLLAMA("\"\"", "\"stop\"") DONE;

static void dialect_streams(void **state)
{
    (void)state;
    /* the content chunks (role chunk included) take the fast path */
    assert_int_equal(diffs(OPENAI), 4);
    assert_int_equal(diffs(OPENAI_TOOLS), 0);
    assert_int_equal(diffs(AZURE), 5); /* prompt-filter, role, three content */
    assert_int_equal(diffs(VLLM_TEXT), 4);
    assert_int_equal(diffs(OLLAMA_TEXT), 3);
}

/* id and model change between chunks (the fast path skips re-copying an
 * unchanged value): prefixes, extensions, escapes, NULs, values longer than
 * the turn's fields. */
#define IDC(id, model) EV("{\"id\":\"" id "\",\"model\":\"" model "\",\"choices\":[]}")
#define L60            "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz01234567"
static const char IDS[] = IDC("abc", "m") IDC("ab", "m1") IDC("abcd", "m")
    IDC("ab\\u0063d", "\\u006d") IDC("a\\u0000", "") IDC("abc", "m\\u0000x")
        IDC(L60 L60 L60, L60 L60) IDC(L60 L60 L60, L60 L60 "z") IDC(L60 L60, L60)
            IDC(L60 L60 "abcdefg", L60 L60 "abcdefg\xC3\xA9")
                IDC(L60 L60 "abcdefg\xC3\xA9", L60 L60 "abcdefg") IDC("", "") IDC("x", "y")
                    IDC("\\u0000z", "\\u0000") DONE;

static void changing_ids(void **state)
{
    (void)state;
    assert_int_equal(diffs(IDS), 14);
    /* and every prefix of the stream, so each intermediate state is compared */
    size_t n = strlen(IDS);
    for (size_t k = 0; k < n; k++)
        if (IDS[k] == '\n' && IDS[k + 1] == '\n')
            diff1(IDS, k + 2, NULL, 0, 0);
}

/* The fast path's results are right, not only equal to the slow path's. */
static void fast_results(void **state)
{
    (void)state;
    rec r;
    memset(&r, 0, sizeof r);
    ad_buf_init(&r.log, 1 << 20);
    ad_cs *cs = ad_cs_new(NULL, &CB, &r);
    assert_int_equal(ad_cs_feed(cs, AZURE, strlen(AZURE)), AD_OK);
    assert_int_equal(ad_cs_finish(cs), AD_OK);
    const ad_cs_turn *t = ad_cs_result(cs);
    assert_string_equal(ad_buf_str(&t->text), "Sure, here it is");
    assert_string_equal(ad_buf_str(&r.log), "T:Sure|T:, here|T: it is|");
    assert_true(t->content_filtered);
    assert_string_equal(t->id, "chatcmpl-az1");
    assert_string_equal(t->model, "gpt-4o-2024-08-06");
    assert_int_equal(ad_cs_fast_count(cs), 5);
    ad_cs_free(cs);

    ad_buf_reset(&r.log);
    cs = ad_cs_new(NULL, &CB, &r);
    assert_int_equal(ad_cs_feed(cs, OLLAMA_TEXT, strlen(OLLAMA_TEXT)), AD_OK);
    assert_int_equal(ad_cs_finish(cs), AD_OK);
    t = ad_cs_result(cs);
    assert_int_equal(t->text.len, 12);
    assert_memory_equal(t->text.ptr, "Hi there\xC3\xA9\0!", 12);
    assert_int_equal(ad_cs_fast_count(cs), 3);
    ad_cs_free(cs);

    ad_buf_reset(&r.log);
    cs = ad_cs_new(NULL, &CB, &r);
    assert_int_equal(ad_cs_feed(cs, OPENAI, strlen(OPENAI)), AD_OK);
    t = ad_cs_result(cs);
    assert_string_equal(ad_buf_str(&t->text),
                        "Hello, w\xC3\xB6rld\n\xF0\x9F\x91\x8B \"q\" / \\ \t");
    assert_string_equal(t->model, "gpt-4o-mini-2024-07-18");
    assert_false(t->content_filtered);
    ad_cs_free(cs);
    ad_buf_free(&r.log);
}

/* ---- the fuzz corpus ---- */

static void corpus(void **state)
{
    (void)state;
    const char *dir = AD_SHARE_DIR "/../fuzz/corpus/chat_stream";
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        char *buf = malloc(1 << 20);
        size_t n = fread(buf, 1, 1 << 20, f);
        fclose(f);
        diff(buf, n);
        free(buf);
        files++;
    }
    closedir(d);
    assert_true(files >= 10);
}

/* ---- generated chunks ---- */

/* A content chunk around the given JSON value text. */
static size_t wrap(char *out, size_t cap, const char *value, size_t vn)
{
    static const char pre[] =
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":";
    static const char post[] =
        "},\"finish_reason\":null}]}\n\n"
        "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
    size_t n = 0;
    assert_true(sizeof pre + vn + sizeof post < cap);
    memcpy(out + n, pre, sizeof pre - 1);
    n += sizeof pre - 1;
    memcpy(out + n, value, vn);
    n += vn;
    memcpy(out + n, post, sizeof post - 1);
    n += sizeof post - 1;
    return n;
}

static const char *const PIECES[] = {
    "a",
    " ",
    "\\n",
    "\\\"",
    "\\\\",
    "\\/",
    "\\b",
    "\\f",
    "\\r",
    "\\t",
    "\\u0000",
    "\\u0041",
    "\\u00e9",
    "\\u00E9",
    "\\u20ac",
    "\\ud83d",
    "\\udc4b",
    "\\uD83D",
    "\\uDE00",
    "\\uZZZZ",
    "\\u12",
    "\\x",
    "\\",
    "\xC3\xA9",
    "\xE2\x82",
    "\xF0\x9F\x98\x80",
    "\xC0\xAF",
    "\xED\xA0\x80",
    "\xFF",
    "\x01",
    "\x7F",
    "\"",
    "\\ud800\\u0041",
    "\\udbff\\udfff",
    "\\ud800\\udc00",
    "\\u0000\\u0000",
    "{",
    "}",
};

static void generated_escapes(void **state)
{
    (void)state;
    uint32_t seed = 12345;
    char value[256], body[1024];
    size_t fast = 0;
    for (int iter = 0; iter < 3000; iter++) {
        size_t vn = 0;
        value[vn++] = '"';
        int k = 1 + (int)(xorshift(&seed) % 6);
        for (int j = 0; j < k; j++) {
            const char *p = PIECES[xorshift(&seed) % (sizeof PIECES / sizeof PIECES[0])];
            size_t pn = strlen(p);
            memcpy(value + vn, p, pn);
            vn += pn;
        }
        value[vn++] = '"';
        size_t n = wrap(body, sizeof body, value, vn);
        fast += diff1(body, n, NULL, 0, 0);
        if (iter % 10 == 0)
            diff(body, n);
    }
    assert_true(fast > 300); /* many of them are valid and fast */
}

/* Values and shapes around the content: each must give the same outcome. */
static void shapes(void **state)
{
    (void)state;
    static const char *const chunks[] = {
        /* taken by the fast path */
        "{\"choices\":[{\"delta\":{\"content\":\"x\"}}]}",
        "{\"choices\":[{\"index\":-0,\"delta\":{\"content\":\"x\"}}]}",
        "{\"choices\":[{\"index\":null,\"delta\":{\"content\":\"x\"}}]}",
        "{\"choices\":[{\"index\":1,\"delta\":{\"content\":\"n>1\"}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":null}]}",
        "{\"choices\":null,\"usage\":null,\"error\":null}",
        "{}",
        " {\"choices\":[ { \"index\" : 0 , \"delta\" : { \"content\" : \"sp\" } } ] } \r\n\t ",
        "{\"id\":\"\\u0000abc\",\"model\":\"m\\/x\",\"choices\":[]}",
        "{\"id\":\"a\\u0000b\",\"model\":\"\\u00e9\"}",
        "{\"id\":5,\"model\":[1,2],\"object\":{\"a\":1}}",
        "{\"id\":\"0123456789012345678901234567890123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789012345678901234567890123456789\xC3\xA9\"}",
        "{\"x\":[1,-2,3.5,-0.0e+10,1E5,12345678901234567,{\"y\":[true,false,null,\"\\u00e9\"]}],"
        "\"choices\":[{\"delta\":{\"content\":\"ok\",\"x\":{}}}]}",
        "{\"x\":1,\"x\":2,\"choices\":[{\"logprobs\":{\"content\":[{\"token\":\"a\",\"logprob\":"
        "-0.25,\"bytes\":[97]}]},\"delta\":{\"content\":\"a\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"f\"},\"content_filter_results\":{\"a\":{"
        "\"filtered\":true}}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"f\"},\"content_filter_results\":{\"a\":{"
        "\"filtered\":1},\"b\":[],\"c\":{\"filtered\":\"true\"}}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"f\"},\"content_filter_results\":[{\"filtered\":"
        "true}]}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"f\"},\"content_filter_results\":5}]}",
        "{\"choices\":[{\"index\":2,\"delta\":{\"content\":\"f\"},\"content_filter_results\":{"
        "\"a\":{\"filtered\":true}}}]}",
        "{\"object\":\"chat.completion.chunk\",\"object2\":\"error\"}",
        /* left to jansson */
        "{\"choices\":[{\"delta\":{\"content\":\"x\"}},{\"index\":1,\"delta\":{}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}},{\"index\":0,\"delta\":{"
        "\"content\":\"b\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"a\",\"content\":\"b\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"a\",\"content\":null}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"a\"},\"delta\":{\"content\":\"b\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"a\"},\"content_filter_results\":{\"a\":{"
        "\"filtered\":true},\"a\":{\"filtered\":false}}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"a\"},\"content_filter_results\":{\"a\":{"
        "\"filtered\":true,\"filtered\":false}}}]}",
        "{\"id\":\"a\",\"id\":\"\",\"choices\":[]}",
        "{\"model\":\"a\",\"model\":\"b\"}",
        "{\"choices\":[{\"delta\":{\"conte\\u006et\":\"esc key\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"\\u0000\":1}",
        "{\"choices\":[{\"delta\":{\"content\":[{\"type\":\"text\",\"text\":\"part\"}]}}]}",
        "{\"choices\":[{\"delta\":{\"content\":5}}]}",
        "{\"choices\":[{\"delta\":{\"refusal\":\"no\"}}]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[]}}]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":5}}]}",
        "{\"choices\":[{\"delta\":\"x\"}]}",
        "{\"choices\":[{\"index\":\"0\",\"delta\":{\"content\":\"x\"}}]}",
        "{\"choices\":[{\"index\":0.0,\"delta\":{\"content\":\"x\"}}]}",
        "{\"choices\":[{\"index\":99999999999999999999,\"delta\":{}}]}",
        "{\"choices\":[5]}",
        "{\"choices\":{}}",
        "{\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":\"length\"}]}",
        "{\"choices\":[{\"delta\":{},\"finish_reason\":5}]}",
        "{\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}",
        "{\"choices\":[],\"usage\":5}",
        "{\"error\":{\"message\":\"boom\",\"code\":429}}",
        "{\"error\":\"\"}",
        "{\"error\":false}",
        "{\"error\":\"x\\u0000y\"}",
        "{\"object\":\"error\",\"message\":\"old vllm\"}",
        "{\"object\":\"err\\u006fr\",\"message\":\"escaped\"}",
        "{\"object\":\"error\\u0000x\",\"message\":\"nul\"}",
        "{\"x\":1e400}",
        "{\"x\":-1e999,\"choices\":[]}",
        "{\"x\":123456789012345678901234567890}",
        "{\"x\":01}",
        "{\"x\":1.}",
        "{\"x\":.5}",
        "{\"x\":-}",
        "{\"x\":1e}",
        "{\"x\":+1}",
        "{\"x\":tru}",
        "{\"x\":nul}",
        "{\"x\":nullx}",
        "{\"x\":NaN}",
        "{\"x\":[1,]}",
        "{\"x\":{\"a\":1,}}",
        "{\"x\":1,}",
        "{,}",
        "{\"x\"}",
        "{\"x\":1 \"y\":2}",
        "{\"choices\":[]} x",
        "{\"choices\":[]}}",
        "[1]",
        "\"str\"",
        "{'x':1}",
        "{\"x\":\"\xC3\"}",
        "{\"x\xFF\":1}",
        "{\"x\":\"a\tb\"}",
        "{\"x\":\"\\ud800\"}",
        "{\"x\":\"\\udc00\"}",
        "{\"x\":\"\\u00g0\"}",
        "{\"x\":\"\\a\"}",
        "{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
        "]]]]]]]]]]]]]]]]}",
        "{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    };
    char body[2048];
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        size_t cn = strlen(chunks[i]);
        int m = snprintf(body, sizeof body,
                         "data: %s\n\ndata: {\"choices\":[{\"delta\":{},"
                         "\"finish_reason\":\"stop\"}]}\n\n",
                         chunks[i]);
        assert_true(m > 0 && (size_t)m < sizeof body);
        size_t fast = diff(body, (size_t)m);
        assert_true(fast <= 1);
        (void)cn;
        if (i < 20) /* the first group is meant for the fast path */
            assert_int_equal(fast, 1);
    }
}

/* Every truncation and many one-byte mutations of typical chunks. */
static void garbled(void **state)
{
    (void)state;
    static const char *const base[] = {
        OAI_H "{\"content\":\"h\\u00e9\\ud83d\\udc4b\\n\"},\"logprobs\":null,\"finish_reason\":"
              "null}],\"usage\":null,\"obfuscation\":\"xq\"}",
        "{\"id\":\"chatcmpl-az1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
        "\"delta\":{\"content\":\"ab\"},\"content_filter_results\":{\"hate\":{\"filtered\":true,"
        "\"severity\":\"low\"}}}],\"x\":[1.5e3,{\"y\":\"\\\"\"}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
        "\"refusal\":null,\"tool_calls\":null}}],\"model\":\"m\"}",
    };
    static const char subst[] = "\"\\{}[],:0-.eE1atfnu\x01\x80\xC3 ";
    char body[2048];
    size_t fast = 0;
    for (size_t b = 0; b < sizeof base / sizeof base[0]; b++) {
        const char *s = base[b];
        size_t n = strlen(s);
        for (size_t cut = 0; cut <= n; cut++) {
            int m = snprintf(body, sizeof body, "data: %.*s\n\n" DONE, (int)cut, s);
            fast += diff1(body, (size_t)m, NULL, 0, 0);
        }
        for (size_t pos = 0; pos < n; pos++) {
            for (size_t k = 0; k < sizeof subst - 1; k++) {
                char chunk[1024];
                memcpy(chunk, s, n);
                chunk[pos] = subst[k];
                memcpy(body, "data: ", 6);
                memcpy(body + 6, chunk, n);
                memcpy(body + 6 + n, "\n\n" DONE, 2 + sizeof DONE - 1);
                fast += diff1(body, 6 + n + 2 + sizeof DONE - 1, NULL, 0, 0);
            }
            /* a byte deleted */
            memcpy(body, "data: ", 6);
            memcpy(body + 6, s, pos);
            memcpy(body + 6 + pos, s + pos + 1, n - pos - 1);
            memcpy(body + 6 + n - 1, "\n\n", 2);
            fast += diff1(body, 6 + n + 1, &SMALL, 0, 0);
        }
    }
    assert_true(fast > 100);
}

/* ---- micro benchmark ---- */

#define BENCH_CHUNKS 10000

static char *bench_body(size_t *n)
{
    static const char one[] = OAI("{\"content\":\" token\"}", "null");
    static const char esc1[] = OAI("{\"content\":\" caf\\u00e9\\n\"}", "null");
    size_t cap = (sizeof one + sizeof esc1) * BENCH_CHUNKS / 2 + 64;
    char *b = malloc(cap);
    size_t o = 0;
    for (int i = 0; i < BENCH_CHUNKS; i++) {
        const char *c = i % 8 == 7 ? esc1 : one;
        size_t cn = strlen(c);
        memcpy(b + o, c, cn);
        o += cn;
    }
    memcpy(b + o, DONE, sizeof DONE);
    *n = o + sizeof DONE - 1;
    return b;
}

static ad_err count_text(void *ud, const char *piece, size_t len)
{
    (void)piece;
    *(size_t *)ud += len;
    return AD_OK;
}

/* Feeds the body in 1 KiB pieces (as libcurl would); returns the text length. */
static size_t bench_fold(const char *b, size_t n, bool fast)
{
    static const ad_cs_callbacks cb = {count_text, NULL, NULL};
    size_t got = 0;
    ad_cs *cs = ad_cs_new(NULL, &cb, &got);
    ad_cs_set_fast(cs, fast);
    for (size_t pos = 0; pos < n; pos += 1024)
        assert_int_equal(ad_cs_feed(cs, b + pos, n - pos < 1024 ? n - pos : 1024), AD_OK);
    assert_int_equal(ad_cs_finish(cs), AD_OK);
    assert_int_equal(ad_cs_fast_count(cs), fast ? BENCH_CHUNKS : 0);
    assert_int_equal(ad_cs_result(cs)->text.len, got);
    ad_cs_free(cs);
    return got;
}

__attribute__((noinline)) size_t bench_fold_fast(const char *b, size_t n);
__attribute__((noinline)) size_t bench_fold_slow(const char *b, size_t n);

__attribute__((noinline)) size_t bench_fold_fast(const char *b, size_t n)
{
    return bench_fold(b, n, true);
}

__attribute__((noinline)) size_t bench_fold_slow(const char *b, size_t n)
{
    return bench_fold(b, n, false);
}

static void bench(void **state)
{
    (void)state;
    size_t n;
    char *b = bench_body(&n);
    size_t a = bench_fold_fast(b, n);
    assert_int_equal(a, bench_fold_slow(b, n));
    assert_int_equal(a, 6 * BENCH_CHUNKS + BENCH_CHUNKS / 8);
    free(b);
}

static void path_was_used(void **state)
{
    (void)state;
    assert_true(total_fast > 1000);
}

/* An argument selects tests by name (cmocka pattern), e.g. `bench` for a
 * callgrind run. */
int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dialect_streams),   cmocka_unit_test(changing_ids),
        cmocka_unit_test(fast_results),      cmocka_unit_test(corpus),
        cmocka_unit_test(generated_escapes), cmocka_unit_test(shapes),
        cmocka_unit_test(garbled),           cmocka_unit_test(bench),
        cmocka_unit_test(path_was_used),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
