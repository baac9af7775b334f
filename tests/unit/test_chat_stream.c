/*
 * test_chat_stream.c -- unit tests for src/run/chat_stream.c.
 *
 * Design. Every fixture is a byte-exact stream in the shape a real upstream
 * sends (OpenAI, Azure OpenAI, vLLM, llama.cpp server, Ollama, OpenRouter).
 * A run records every callback into a transcript ("T:" text, "S<i>:id:name"
 * start, "A<i>:" args; pieces escaped, '|' separated) and then renders the
 * whole outcome -- return codes, error message and code, transcript and the
 * accumulated turn -- into one snapshot string. check() runs a fixture fed
 * whole, one byte at a time, split in two at every position, in random
 * pieces, and again (whole, bytewise, random) with its line ends rewritten to
 * CRLF and to CR, and
 * asserts that every snapshot is identical to the whole-feed one; the test
 * then asserts the exact expected fields on that reference run. So every
 * fixture doubles as a split-invariance test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run/chat_stream.h"
#include "util/str.h"

/* ---- recording ---- */

typedef struct rec {
    ad_buf log;
    int calls;
    int fail_at; /* 1-based callback number that fails with AD_EIO; 0 never */
    bool failed;
} rec;

static void esc(ad_buf *b, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j < n && p[j] != '\\' && p[j] != '|' && p[j] != '\n' && p[j] != '\r' && p[j] != '\0')
            j++;
        if (j > i) {
            ad_buf_add(b, p + i, j - i); /* a run of plain bytes */
            i = j - 1;
            continue;
        }
        switch (p[i]) {
        case '\\':
            ad_buf_addstr(b, "\\\\");
            break;
        case '|':
            ad_buf_addstr(b, "\\|");
            break;
        case '\n':
            ad_buf_addstr(b, "\\n");
            break;
        case '\r':
            ad_buf_addstr(b, "\\r");
            break;
        case '\0':
            ad_buf_addstr(b, "\\0");
            break;
        default:
            ad_buf_addc(b, p[i]);
        }
    }
}

static ad_err next_call(rec *r)
{
    assert_false(r->failed); /* nothing may be called after a failure */
    if (++r->calls == r->fail_at) {
        r->failed = true;
        return AD_EIO;
    }
    return AD_OK;
}

static ad_err on_text(void *ud, const char *piece, size_t len)
{
    rec *r = ud;
    assert_true(len > 0);
    ad_buf_addstr(&r->log, "T:");
    esc(&r->log, piece, len);
    ad_buf_addc(&r->log, '|');
    return next_call(r);
}

static ad_err on_start(void *ud, int index, const char *id, const char *name)
{
    rec *r = ud;
    assert_non_null(id);
    assert_non_null(name);
    assert_true(name[0] != '\0');
    ad_buf_printf(&r->log, "S%d:%s:%s|", index, id, name);
    return next_call(r);
}

static ad_err on_args(void *ud, int index, const char *piece, size_t len)
{
    rec *r = ud;
    assert_true(len > 0);
    ad_buf_printf(&r->log, "A%d:", index);
    esc(&r->log, piece, len);
    ad_buf_addc(&r->log, '|');
    return next_call(r);
}

static const ad_cs_callbacks CB = {on_text, on_start, on_args};

/* ---- running ---- */

enum plan { WHOLE, BYTES, AT, RANDOM };

typedef struct result {
    ad_cs *cs;
    rec *rec; /* the callbacks' user data, owned */
    ad_err feed_rc, finish_rc;
    ad_buf snap;
} result;

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void snapshot(result *res)
{
    const ad_cs_turn *t = ad_cs_result(res->cs);
    ad_buf *b = &res->snap;
    ad_buf_init(b, 64 << 20);
    ad_buf_printf(b, "feed=%d finish=%d err=[%s] code=[%s]\nlog=", res->feed_rc, res->finish_rc,
                  ad_cs_error(res->cs), ad_cs_error_code(res->cs));
    esc(b, ad_buf_str(&res->rec->log), res->rec->log.len);
    ad_buf_addstr(b, "\ntext=");
    esc(b, ad_buf_str(&t->text), t->text.len);
    ad_buf_addstr(b, "\nrefusal=");
    esc(b, ad_buf_str(&t->refusal), t->refusal.len);
    ad_buf_printf(b, "\nncalls=%d\n", t->ncalls);
    for (int i = 0; i < AD_CS_MAX_TOOL_CALLS; i++) {
        const ad_cs_tool_call *c = &t->calls[i];
        if (i >= t->ncalls) {
            assert_int_equal(c->id.len + c->name.len + c->args.len, 0);
            continue;
        }
        ad_buf_printf(b, "call%d id=%s type=%s name=%s args=", i, ad_buf_str(&c->id), c->type,
                      ad_buf_str(&c->name));
        esc(b, ad_buf_str(&c->args), c->args.len);
        ad_buf_addc(b, '\n');
    }
    ad_buf_printf(b, "finish_reason=%s usage=%d/%lld/%lld/%lld filtered=%d done=%d\n",
                  t->finish_reason, t->have_usage, (long long)t->prompt_tokens,
                  (long long)t->completion_tokens, (long long)t->total_tokens, t->content_filtered,
                  t->done);
    ad_buf_printf(b, "model=%s id=%s\n", t->model, t->id);
}

static result start(const ad_cs_limits *lim, int fail_at)
{
    result res;
    memset(&res, 0, sizeof res);
    res.rec = calloc(1, sizeof *res.rec);
    ad_buf_init(&res.rec->log, 64 << 20);
    res.rec->fail_at = fail_at;
    res.cs = ad_cs_new(lim, &CB, res.rec);
    return res;
}

static result run_ex(const char *s, size_t n, const ad_cs_limits *lim, enum plan plan, size_t param,
                     int fail_at)
{
    result res = start(lim, fail_at);
    uint32_t seed = (uint32_t)param * 2654435761u + 1;
    size_t pos = 0;
    while (pos < n && !res.feed_rc) {
        size_t k = n - pos;
        if (plan == BYTES)
            k = 1;
        else if (plan == AT)
            k = pos < param ? param - pos : n - pos;
        else if (plan == RANDOM)
            k = 1 + xorshift(&seed) % (1 + param % 97);
        if (k > n - pos)
            k = n - pos;
        /* a private copy so that the parser cannot read past the piece */
        char *piece = malloc(k ? k : 1);
        memcpy(piece, s + pos, k);
        res.feed_rc = ad_cs_feed(res.cs, piece, k);
        free(piece);
        pos += k;
    }
    res.finish_rc = ad_cs_finish(res.cs);
    snapshot(&res);
    return res;
}

static result run(const char *s, const ad_cs_limits *lim)
{
    return run_ex(s, strlen(s), lim, WHOLE, 0, 0);
}

static void done_result(result *res)
{
    ad_cs_free(res->cs);
    ad_buf_free(&res->rec->log);
    free(res->rec);
    ad_buf_free(&res->snap);
}

static void same(const result *ref, result got)
{
    assert_string_equal(ad_buf_str(&ref->snap), ad_buf_str(&got.snap));
    done_result(&got);
}

static char *rewrite_eol(const char *s, const char *eol)
{
    size_t n = strlen(s), e = strlen(eol), lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += s[i] == '\n';
    char *out = malloc(n + lines * e + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') {
            memcpy(out + o, eol, e);
            o += e;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static void all_splits(const result *ref, const char *s, const ad_cs_limits *lim, bool every_cut)
{
    size_t n = strlen(s);
    same(ref, run_ex(s, n, lim, WHOLE, 0, 0));
    same(ref, run_ex(s, n, lim, BYTES, 0, 0));
    for (size_t k = 1; every_cut && k < n && n <= 20000; k++)
        same(ref, run_ex(s, n, lim, AT, k, 0));
    for (size_t seed = 1; seed <= 40; seed++)
        same(ref, run_ex(s, n, lim, RANDOM, seed, 0));
}

enum { LF_ONLY = 0, ALL_EOLS = 1 };

/* Runs s every way (see the top comment) and returns the whole-feed run. */
static result check(const char *s, const ad_cs_limits *lim, int eols)
{
    result ref = run(s, lim);
    all_splits(&ref, s, lim, true);
    if (eols == ALL_EOLS) {
        assert_null(strchr(s, '\r'));
        const char *variants[] = {"\r\n", "\r"};
        for (size_t v = 0; v < 2; v++) {
            char *t = rewrite_eol(s, variants[v]);
            all_splits(&ref, t, lim, false); /* every cut of LF already done */
            free(t);
        }
    }
    return ref;
}

static const ad_cs_turn *T(const result *r)
{
    return ad_cs_result(r->cs);
}

static void assert_usage(const result *r, int64_t p, int64_t c, int64_t t)
{
    assert_true(T(r)->have_usage);
    assert_int_equal(T(r)->prompt_tokens, p);
    assert_int_equal(T(r)->completion_tokens, c);
    assert_int_equal(T(r)->total_tokens, t);
}

#define LOG(r)     ad_buf_str(&(r).rec->log)
#define TEXT(r)    ad_buf_str(&T(&(r))->text)
#define CALL(r, i) (&T(&(r))->calls[i])

/* ---- fixtures ---- */

#define EV(json) "data: " json "\n\n"

/* OpenAI (api.openai.com, gpt-4o-mini, 2025): every chunk repeats the header;
 * usage is null until the usage-only chunk; obfuscation pads the chunks. */
#define OAI_HEAD                                                                                   \
    "{\"id\":\"chatcmpl-C3nZQ8aXb1kTz0dE5Yw2LQmPp7rVu\",\"object\":\"chat.completion.chunk\","     \
    "\"created\":1754911234,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\","    \
    "\"system_fingerprint\":\"fp_560af6e559\",\"choices\":[{\"index\":0,\"delta\":"
#define OAI(delta, fr)                                                                             \
    EV(OAI_HEAD delta ",\"logprobs\":null,\"finish_reason\":" fr                                   \
                      "}],\"usage\":null,\"obfuscation\":\"Xq3\"}")
#define OAI_USAGE(p, c, t)                                                                         \
    EV("{\"id\":\"chatcmpl-C3nZQ8aXb1kTz0dE5Yw2LQmPp7rVu\",\"object\":\"chat.completion.chunk\","  \
       "\"created\":1754911234,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\"," \
       "\"system_fingerprint\":\"fp_560af6e559\",\"choices\":[],\"usage\":{\"prompt_tokens\":" #p  \
       ",\"completion_tokens\":" #c ",\"total_tokens\":" #t                                        \
       ",\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},"                      \
       "\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,"                 \
       "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}},"                      \
       "\"obfuscation\":\"kR\"}")
#define DONE "data: [DONE]\n\n"

/* A minimal chunk, for framing tests. */
#define CONTENT(s) EV("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" s "\"}}]}")
#define STOP       EV("{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}")

static const char OPENAI_TEXT[] =
    OAI("{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}", "null")
        OAI("{\"content\":\"Hello\"}", "null") OAI("{\"content\":\"!\"}", "null")
            OAI("{\"content\":\" How can I help you today\"}", "null")
                OAI("{\"content\":\"? \\u2014 caf\xC3\xA9 \\ud83d\\udc4b\\n\\\"ok\\\"\"}", "null")
                    OAI("{}", "\"stop\"") OAI_USAGE(19, 12, 31) DONE;

static void openai_text_stream(void **state)
{
    (void)state;
    result r = check(OPENAI_TEXT, NULL, ALL_EOLS);
    assert_int_equal(r.feed_rc, AD_OK);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(TEXT(r), "Hello! How can I help you today? \xE2\x80\x94 caf\xC3\xA9 "
                                 "\xF0\x9F\x91\x8B\n\"ok\"");
    assert_string_equal(LOG(r), "T:Hello|T:!|T: How can I help you today|"
                                "T:? \xE2\x80\x94 caf\xC3\xA9 \xF0\x9F\x91\x8B\\n\"ok\"|");
    assert_string_equal(T(&r)->finish_reason, "stop");
    assert_usage(&r, 19, 12, 31);
    assert_true(T(&r)->done);
    assert_false(T(&r)->content_filtered);
    assert_int_equal(T(&r)->ncalls, 0);
    assert_int_equal(T(&r)->refusal.len, 0);
    assert_string_equal(T(&r)->model, "gpt-4o-mini-2024-07-18");
    assert_string_equal(T(&r)->id, "chatcmpl-C3nZQ8aXb1kTz0dE5Yw2LQmPp7rVu");
    assert_string_equal(ad_cs_error(r.cs), "");
    done_result(&r);
}

/* Every framing rule at once: BOM, comments/heartbeats, ignored fields,
 * data without space, with two spaces, "data" alone, multi-line data, a
 * comment inside an event, a blank keep-alive event, case-sensitive names. */
static const char FRAMING[] =
    "\xEF\xBB\xBF: OPENROUTER PROCESSING\n\n"
    ": OPENROUTER PROCESSING\n\n"
    "event: message\nid: 1\nretry: 3000\n"
    "data:{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"A\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\n"
    "data: \"delta\":{\"content\":\"B\"}}]}\n\n"
    "foo: bar\n"
    "Data: {not json\n"
    "data : {not json either\n"
    "datas: {nor this\n"
    "data\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"C\"}}]}\n\n"
    "data:  {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"D\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":\n"
    ": ping - 2025-08-11 12:00:00.000000+00:00\n"
    "data: {\"content\":\"E\"}}]}\n"
    "\n"
    "data: \n\n"
    "data:\n\n"
    "event: ping\n\n"
    ":\n\n" STOP DONE;

static void sse_framing_rules(void **state)
{
    (void)state;
    result r = check(FRAMING, NULL, ALL_EOLS);
    assert_int_equal(r.feed_rc, AD_OK);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(TEXT(r), "ABCDE");
    assert_string_equal(LOG(r), "T:A|T:B|T:C|T:D|T:E|");
    assert_true(T(&r)->done);
    assert_string_equal(T(&r)->finish_reason, "stop");
    done_result(&r);
}

/* Mixed line ends in one stream: CRLF, CR, LF and LF CR LF (a line end
 * followed by a CRLF blank line). */
static const char MIXED_EOL[] =
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\r\n\r\n"
    "data: {\"choices\":[{\"index\":0,\r"
    "data: \"delta\":{\"content\":\"b\"}}]}\r\r"
    "data: {\"choices\":[{\"index\":0,\r\n"
    "data: \"delta\":{\"content\":\"c\"}}]}\n\r\n"
    ": keep-alive\r"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\n"
    "data: [DONE]\r\r";

static void sse_mixed_line_ends(void **state)
{
    (void)state;
    result r = check(MIXED_EOL, NULL, LF_ONLY);
    assert_int_equal(r.feed_rc, AD_OK);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(LOG(r), "T:a|T:b|T:c|");
    assert_true(T(&r)->done);
    done_result(&r);
}

/* A CRLF cut between its CR and its LF is one line end, not two: otherwise the
 * first half of this two-line event would be dispatched alone (bad JSON). */
static void sse_crlf_split_across_feeds(void **state)
{
    (void)state;
    static const char *pieces[] = {
        "data: {\"choices\":[{\"index\":0,\r",
        "\ndata: \"delta\":{\"content\":\"x\"}}]}\r",
        "\n\r",
        "\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\r",
        "\n",
        "\r",
        "\n",
    };
    rec r;
    memset(&r, 0, sizeof r);
    ad_buf_init(&r.log, 4096);
    ad_cs *cs = ad_cs_new(NULL, &CB, &r);
    for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++)
        assert_int_equal(ad_cs_feed(cs, pieces[i], strlen(pieces[i])), AD_OK);
    assert_int_equal(ad_cs_finish(cs), AD_OK);
    assert_string_equal(ad_buf_str(&r.log), "T:x|");
    assert_string_equal(ad_cs_result(cs)->finish_reason, "stop");
    ad_cs_free(cs);
    ad_buf_free(&r.log);
}

static const char AFTER_DONE[] = CONTENT("A") DONE CONTENT("B") "data: {garbage\n\n"
                                                                "data: [1]\n\n";

static void done_ends_stream(void **state)
{
    (void)state;
    result r = check(AFTER_DONE, NULL, ALL_EOLS);
    assert_int_equal(r.feed_rc, AD_OK);
    assert_int_equal(r.finish_rc, AD_OK); /* [DONE] without a finish_reason is fine */
    assert_string_equal(LOG(r), "T:A|");
    assert_true(T(&r)->done);
    assert_string_equal(T(&r)->finish_reason, "");
    done_result(&r);

    /* [DONE] not followed by a blank line was never dispatched. */
    r = check(CONTENT("A") "data: [DONE]\n", NULL, ALL_EOLS);
    assert_int_equal(r.feed_rc, AD_OK);
    assert_int_equal(r.finish_rc, AD_EINVAL);
    assert_false(T(&r)->done);
    done_result(&r);
}

static void finish_reasons(void **state)
{
    (void)state;
    static const struct {
        const char *fr;
        bool filtered;
    } cases[] = {{"stop", false},          {"length", false},
                 {"tool_calls", false},    {"content_filter", true},
                 {"function_call", false}, {"a_finish_reason_longer_than_thirty_one_bytes", false}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char s[1024];
        snprintf(s, sizeof s, "%s%s%s", OAI("{\"content\":\"Hi\"}", "null"),
                 "data: " OAI_HEAD "{},\"logprobs\":null,\"finish_reason\":\"", cases[i].fr);
        size_t n = strlen(s);
        snprintf(s + n, sizeof s - n, "\"}],\"usage\":null}\n\n%s", DONE);
        result r = check(s, NULL, LF_ONLY);
        assert_int_equal(r.feed_rc, AD_OK);
        assert_int_equal(r.finish_rc, AD_OK);
        char want[32];
        ad_strlcpy(want, cases[i].fr, sizeof want);
        assert_string_equal(T(&r)->finish_reason, want);
        assert_int_equal(T(&r)->content_filtered, cases[i].filtered);
        assert_string_equal(TEXT(r), "Hi");
        done_result(&r);
    }
}

/* n = 2: choice 1 is someone else's. */
static const char TWO_CHOICES[] = EV(
    "{\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":"
    "\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"finish_reason\":null},{\"index\":1,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"finish_reason\":null}]}")
    EV("{\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other\",\"tool_calls\":[{\"index\":0,"
       "\"id\":\"call_other\",\"type\":\"function\",\"function\":{\"name\":\"nope\","
       "\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}")
        EV("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"mine\"},\"finish_reason\":null}]}")
            EV("{\"choices\":[{\"index\":1,\"delta\":{},\"finish_reason\":\"length\"},{\"index\":0,"
               "\"delta\":{},\"finish_reason\":\"stop\"}]}") DONE;

static void only_choice_zero(void **state)
{
    (void)state;
    result r = check(TWO_CHOICES, NULL, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(LOG(r), "T:mine|");
    assert_string_equal(T(&r)->finish_reason, "stop");
    assert_int_equal(T(&r)->ncalls, 0);
    done_result(&r);
}

/* OpenAI gpt-4o, two parallel calls, each streamed completely in turn. */
#define OAI_TC(tc) OAI("{\"tool_calls\":[" tc "]}", "null")
static const char OPENAI_TOOLS[] =
    OAI("{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":"
        "\"call_Fd1wMDoyKvCFhWpnAvmSL3fX\",\"type\":\"function\",\"function\":{\"name\":"
        "\"get_weather\",\"arguments\":\"\"}}],\"refusal\":null}",
        "null") OAI_TC("{\"index\":0,\"function\":{\"arguments\":\"{\\\"lo\"}}")
        OAI_TC("{\"index\":0,\"function\":{\"arguments\":\"cation\\\": \\\"Pa\"}}")
            OAI_TC("{\"index\":0,\"function\":{\"arguments\":\"ris, France\\\"}\"}}") OAI_TC(
                "{\"index\":1,\"id\":\"call_8dTqL0vJxYk3Wm2nZbRc7PsA\",\"type\":\"function\","
                "\"function\":{\"name\":\"get_time\",\"arguments\":\"\"}}")
                OAI_TC("{\"index\":1,\"function\":{\"arguments\":\"{\\\"tz\\\":\"}}")
                    OAI_TC("{\"index\":1,\"function\":{\"arguments\":\" \\\"Europe/Paris\\\"}\"}}")
                        OAI("{}", "\"tool_calls\"") OAI_USAGE(82, 47, 129) DONE;

static void openai_tool_calls(void **state)
{
    (void)state;
    result r = check(OPENAI_TOOLS, NULL, ALL_EOLS);
    assert_int_equal(r.feed_rc, AD_OK);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(LOG(r), "S0:call_Fd1wMDoyKvCFhWpnAvmSL3fX:get_weather|A0:{\"lo|"
                                "A0:cation\": \"Pa|A0:ris, France\"}|"
                                "S1:call_8dTqL0vJxYk3Wm2nZbRc7PsA:get_time|A1:{\"tz\":|"
                                "A1: \"Europe/Paris\"}|");
    assert_int_equal(T(&r)->ncalls, 2);
    assert_string_equal(ad_buf_str(&CALL(r, 0)->id), "call_Fd1wMDoyKvCFhWpnAvmSL3fX");
    assert_string_equal(CALL(r, 0)->type, "function");
    assert_string_equal(ad_buf_str(&CALL(r, 0)->name), "get_weather");
    assert_string_equal(ad_buf_str(&CALL(r, 0)->args), "{\"location\": \"Paris, France\"}");
    assert_string_equal(ad_buf_str(&CALL(r, 1)->id), "call_8dTqL0vJxYk3Wm2nZbRc7PsA");
    assert_string_equal(ad_buf_str(&CALL(r, 1)->name), "get_time");
    assert_string_equal(ad_buf_str(&CALL(r, 1)->args), "{\"tz\": \"Europe/Paris\"}");
    assert_string_equal(T(&r)->finish_reason, "tool_calls");
    assert_int_equal(T(&r)->text.len, 0);
    assert_usage(&r, 82, 47, 129);
    done_result(&r);
}

/* Three calls whose fragments interleave by index, two headers in one delta. */
static const char INTERLEAVED[] = EV(
    "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"tool_calls\":["
    "{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"fa\","
    "\"arguments\":\"\"}},{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":"
    "{\"name\":\"fb\",\"arguments\":\"{\\\"b\\\":\"}}]}}]}")
    EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":2,\"id\":\"call_c\","
       "\"type\":\"function\",\"function\":{\"name\":\"fc\",\"arguments\":\"{\"}},{\"index\":0,"
       "\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]}}]}")
        EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":"
           "{\"arguments\":\"2}\"}}]}}]}")
            EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":2,\"function\":"
               "{\"arguments\":\"}\"}},{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]}}]}")
                EV("{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}")
                    DONE;

static void interleaved_tool_calls(void **state)
{
    (void)state;
    result r = check(INTERLEAVED, NULL, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(LOG(r), "S0:call_a:fa|S1:call_b:fb|A1:{\"b\":|S2:call_c:fc|A2:{|"
                                "A0:{\"a\":|A1:2}|A2:}|A0:1}|");
    assert_int_equal(T(&r)->ncalls, 3);
    assert_string_equal(ad_buf_str(&CALL(r, 0)->args), "{\"a\":1}");
    assert_string_equal(ad_buf_str(&CALL(r, 1)->args), "{\"b\":2}");
    assert_string_equal(ad_buf_str(&CALL(r, 2)->args), "{}");
    assert_string_equal(ad_buf_str(&CALL(r, 2)->name), "fc");
    done_result(&r);
}

/* A single fragmented call sent without "index" at all. */
static const char NO_INDEX_SINGLE[] = EV(
    "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"id\":"
    "\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"lookup\",\"arguments\":\"\"}}]}}"
    "]}") EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":"
             "\"{\\\"q\\\":\"}}]}}]}")
    EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"call_1\",\"function\":"
       "{\"arguments\":\"\\\"x\\\"}\"}}]}}]}")
        EV("{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}") DONE;

static void tool_call_without_index(void **state)
{
    (void)state;
    result r = check(NO_INDEX_SINGLE, NULL, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(LOG(r), "S0:call_1:lookup|A0:{\"q\":|A0:\"x\"}|");
    assert_int_equal(T(&r)->ncalls, 1);
    assert_string_equal(ad_buf_str(&CALL(r, 0)->args), "{\"q\":\"x\"}");
    done_result(&r);
}

/* Ollama 0.4-0.5 (/v1/chat/completions): whole calls, no index, two in one
 * delta and one more in a later chunk; finish_reason "stop" with tool calls. */
#define OLLAMA_HEAD                                                                                \
    "{\"id\":\"chatcmpl-297\",\"object\":\"chat.completion.chunk\",\"created\":1731000000,"        \
    "\"model\":\"llama3.1:8b\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,"    \
    "\"delta\":"
static const char OLLAMA_NO_INDEX[] = EV(
    OLLAMA_HEAD "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":"
                "\"call_z2r9fh1q\",\"type\":\"function\",\"function\":{\"name\":"
                "\"get_current_weather\",\"arguments\":\"{\\\"format\\\":\\\"celsius\\\","
                "\\\"location\\\":\\\"Paris\\\"}\"}},{\"id\":\"call_k1m3x0aa\",\"type\":"
                "\"function\",\"function\":{\"name\":\"get_current_weather\",\"arguments\":"
                "\"{\\\"format\\\":\\\"celsius\\\",\\\"location\\\":\\\"Tokyo\\\"}\"}}]},"
                "\"finish_reason\":null}]}")
    EV(OLLAMA_HEAD "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{"
                   "\"name\":\"get_time\",\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}")
        EV(OLLAMA_HEAD "{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":\"stop\"}]}")
            EV("{\"id\":\"chatcmpl-297\",\"object\":\"chat.completion.chunk\",\"created\":"
               "1731000000,"
               "\"model\":\"llama3.1:8b\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[],"
               "\"usage\":"
               "{\"prompt_tokens\":212,\"completion_tokens\":48,\"total_tokens\":260}}") DONE;

static void ollama_calls_without_index(void **state)
{
    (void)state;
    result r = check(OLLAMA_NO_INDEX, NULL, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(LOG(r), "S0:call_z2r9fh1q:get_current_weather|"
                                "A0:{\"format\":\"celsius\",\"location\":\"Paris\"}|"
                                "S1:call_k1m3x0aa:get_current_weather|"
                                "A1:{\"format\":\"celsius\",\"location\":\"Tokyo\"}|"
                                "S2::get_time|A2:{}|");
    assert_int_equal(T(&r)->ncalls, 3);
    assert_string_equal(ad_buf_str(&CALL(r, 2)->id), ""); /* none sent */
    assert_string_equal(T(&r)->finish_reason, "stop");    /* recorded as sent */
    assert_usage(&r, 212, 48, 260);
    assert_string_equal(T(&r)->model, "llama3.1:8b");
    done_result(&r);
}

/* Newer Ollama and some proxies send every parallel call as index 0, ids
 * distinct; fragments without id continue the latest call at that index; a
 * re-sent id goes back to its own call. */
static const char SAME_INDEX[] =
    EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"call_a\",\"index\":0,"
       "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
       "\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}")
        EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"call_b\",\"index\":0,"
           "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
           "\"{\\\"city\\\":\"}}]},\"finish_reason\":null}]}")
            EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
               "{\"arguments\":\"\\\"Berlin\\\"}\"}}]},\"finish_reason\":null}]}")
                EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"call_a\","
                   "\"index\":0,"
                   "\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_"
                   "reason\":null}]}")
                    EV("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":"
                       "\"tool_calls\"}]}") DONE;

static void same_index_different_ids(void **state)
{
    (void)state;
    result r = check(SAME_INDEX, NULL, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(LOG(r), "S0:call_a:get_weather|A0:{\"city\":\"Paris\"}|"
                                "S1:call_b:get_weather|A1:{\"city\":|A1:\"Berlin\"}|");
    assert_int_equal(T(&r)->ncalls, 2);
    assert_string_equal(ad_buf_str(&CALL(r, 0)->args), "{\"city\":\"Paris\"}");
    assert_string_equal(ad_buf_str(&CALL(r, 1)->args), "{\"city\":\"Berlin\"}");
    done_result(&r);
}

/* Arguments before the name are held back and delivered after the start. */
static const char ARGS_FIRST[] = EV(
    "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
    "{\"arguments\":\"{\\\"a\\\":\"}}]}}]}")
    EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_x\","
       "\"function\":{\"name\":\"f\",\"arguments\":\"1\"}}]}}]}")
        EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
           "{\"name\":\"ignored_second_name\",\"arguments\":\"}\"}}]}}]}")
            EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":2,\"function\":"
               "{\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}") DONE;

static void args_before_name_and_gaps(void **state)
{
    (void)state;
    result r = check(ARGS_FIRST, NULL, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(LOG(r), "S0:call_x:f|A0:{\"a\":1|A0:}|");
    assert_int_equal(T(&r)->ncalls, 3); /* highest index + 1 */
    assert_string_equal(ad_buf_str(&CALL(r, 0)->name), "f");
    assert_string_equal(ad_buf_str(&CALL(r, 0)->args), "{\"a\":1}");
    assert_int_equal(CALL(r, 1)->name.len, 0); /* the gap */
    assert_int_equal(CALL(r, 2)->name.len, 0); /* never named: no callbacks */
    assert_string_equal(ad_buf_str(&CALL(r, 2)->args), "{}");
    done_result(&r);
}

/* ---- tool-call pieces whose ids are unstable or reused ---- */

#define TCS(tc) EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[" tc "]}}]}")
#define TC_END                                                                                     \
    EV("{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}") DONE

static result fold(const char *body);

/* Runs a tool-call fixture every way; asserts success, transcript, ncalls. */
static result tools_ok(const char *s, const char *log, int ncalls)
{
    result r = check(s, NULL, ALL_EOLS);
    assert_int_equal(r.feed_rc, AD_OK);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(LOG(r), log);
    assert_int_equal(T(&r)->ncalls, ncalls);
    return r;
}

/* (a) vLLM with gpt-oss (vllm-project/vllm#23522), Poolside: a continuation
 * piece carries a fresh id. The index decides; the first id is kept. */
static const char UNSTABLE_IDS[] =
    TCS("{\"index\":0,\"id\":\"id1\",\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"arguments\":\"{\\\"x\\\"\"}}")
        TCS("{\"index\":0,\"id\":\"id2\",\"type\":\"function\",\"function\":{\"arguments\":"
            "\":\\\"1\\\"}\"}}") TC_END;
/* the same without index */
static const char UNSTABLE_IDS_NO_INDEX[] =
    TCS("{\"id\":\"id1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
        "\"{\\\"x\\\"\"}}")
        TCS("{\"id\":\"id2\",\"type\":\"function\",\"function\":{\"arguments\":\":\\\"1\\\"}\"}}")
            TC_END;
/* two parallel calls, each continuation with its own fresh id */
static const char UNSTABLE_IDS_PARALLEL[] =
    TCS("{\"index\":0,\"id\":\"id1\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\"\"}}")
        TCS("{\"index\":1,\"id\":\"id3\",\"function\":{\"name\":\"g\",\"arguments\":"
            "\"{\\\"y\\\"\"}}")
            TCS("{\"index\":0,\"id\":\"id2\",\"function\":{\"arguments\":\":\\\"1\\\"}\"}}")
                TCS("{\"index\":1,\"id\":\"id4\",\"function\":{\"arguments\":\":2}\"}}") TC_END;

static void unstable_id_continues_call(void **state)
{
    (void)state;
    const char *srcs[] = {UNSTABLE_IDS, UNSTABLE_IDS_NO_INDEX};
    for (size_t i = 0; i < 2; i++) {
        result r = tools_ok(srcs[i], "S0:id1:f|A0:{\"x\"|A0::\"1\"}|", 1);
        assert_string_equal(ad_buf_str(&CALL(r, 0)->id), "id1");
        assert_string_equal(ad_buf_str(&CALL(r, 0)->name), "f");
        assert_string_equal(ad_buf_str(&CALL(r, 0)->args), "{\"x\":\"1\"}");
        done_result(&r);
    }
    result r = tools_ok(UNSTABLE_IDS_PARALLEL,
                        "S0:id1:f|A0:{\"x\"|S1:id3:g|A1:{\"y\"|A0::\"1\"}|A1::2}|", 2);
    assert_string_equal(ad_buf_str(&CALL(r, 0)->args), "{\"x\":\"1\"}");
    assert_string_equal(ad_buf_str(&CALL(r, 1)->args), "{\"y\":2}");
    done_result(&r);
}

/* (b) as (a), the name repeated on the continuation: still one call while
 * the arguments so far are not a complete JSON value. */
static const char UNSTABLE_IDS_NAME[] =
    TCS("{\"index\":0,\"id\":\"id1\",\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"arguments\":\"{\\\"x\\\"\"}}")
        TCS("{\"index\":0,\"id\":\"id2\",\"type\":\"function\",\"function\":{\"name\":\"f\","
            "\"arguments\":\":\\\"1\\\"}\"}}") TC_END;
static const char UNSTABLE_IDS_NAME_NO_INDEX[] =
    TCS("{\"id\":\"id1\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\"\"}}")
        TCS("{\"id\":\"id2\",\"function\":{\"name\":\"f\",\"arguments\":\":\\\"1\\\"}\"}}") TC_END;
/* header first (arguments ""), then every piece with name and a fresh id; a
 * brace and an escaped quote inside a string do not close the value */
static const char UNSTABLE_IDS_HEADER[] =
    TCS("{\"index\":0,\"id\":\"id1\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}")
        TCS("{\"index\":0,\"id\":\"id2\",\"function\":{\"name\":\"f\",\"arguments\":"
            "\"{\\\"s\\\":\\\"a\\\\\\\"}\"}}")
            TCS("{\"index\":0,\"id\":\"id3\",\"function\":{\"name\":\"f\",\"arguments\":"
                "\"\\\"}\"}}") TC_END;

static void unstable_id_repeated_name(void **state)
{
    (void)state;
    const char *srcs[] = {UNSTABLE_IDS_NAME, UNSTABLE_IDS_NAME_NO_INDEX};
    for (size_t i = 0; i < 2; i++) {
        result r = tools_ok(srcs[i], "S0:id1:f|A0:{\"x\"|A0::\"1\"}|", 1);
        assert_string_equal(ad_buf_str(&CALL(r, 0)->args), "{\"x\":\"1\"}");
        done_result(&r);
    }
    result r = tools_ok(UNSTABLE_IDS_HEADER, "S0:id1:f|A0:{\"s\":\"a\\\\\"}|A0:\"}|", 1);
    assert_string_equal(ad_buf_str(&CALL(r, 0)->args), "{\"s\":\"a\\\"}\"}");
    assert_string_equal(ad_buf_str(&CALL(r, 0)->id), "id1");
    done_result(&r);
}

/* (c) one id at two indexes: the index decides. */
static const char ID_TWO_INDEXES[] =
    TCS("{\"index\":0,\"id\":\"call_0\",\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"arguments\":\"{\\\"x\\\":\\\"1\\\"}\"}}")
        TCS("{\"index\":1,\"id\":\"call_0\",\"type\":\"function\",\"function\":{\"name\":\"g\","
            "\"arguments\":\"{\\\"x\\\":\\\"2\\\"}\"}}") TC_END;
/* the same, OpenAI-style: headers, then interleaved pieces without id */
static const char ID_TWO_INDEXES_PIECES[] =
    TCS("{\"index\":0,\"id\":\"call_0\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}")
        TCS("{\"index\":1,\"id\":\"call_0\",\"function\":{\"name\":\"g\",\"arguments\":\"\"}}")
            TCS("{\"index\":0,\"function\":{\"arguments\":\"{\\\"x\\\":\"}}")
                TCS("{\"index\":1,\"function\":{\"arguments\":\"{\\\"y\\\":\"}}")
                    TCS("{\"index\":0,\"function\":{\"arguments\":\"1}\"}}")
                        TCS("{\"index\":1,\"function\":{\"arguments\":\"2}\"}}") TC_END;
/* one id for every whole call, all at index 0 */
static const char ID_REUSED_SAME_INDEX[] =
    TCS("{\"index\":0,\"id\":\"call_0\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}")
        TCS("{\"index\":0,\"id\":\"call_0\",\"function\":{\"name\":\"g\",\"arguments\":"
            "\"{\\\"a\\\":1}\"}}") TC_END;
/* the current call's header sent again (no arguments): not a new call */
static const char HEADER_AGAIN[] =
    TCS("{\"index\":0,\"id\":\"call_a\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}")
        TCS("{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"f\","
            "\"arguments\":\"\"}}") TC_END;

static void id_reused_across_calls(void **state)
{
    (void)state;
    result r =
        tools_ok(ID_TWO_INDEXES, "S0:call_0:f|A0:{\"x\":\"1\"}|S1:call_0:g|A1:{\"x\":\"2\"}|", 2);
    assert_string_equal(ad_buf_str(&CALL(r, 0)->args), "{\"x\":\"1\"}");
    assert_string_equal(ad_buf_str(&CALL(r, 1)->name), "g");
    assert_string_equal(ad_buf_str(&CALL(r, 1)->args), "{\"x\":\"2\"}");
    done_result(&r);

    r = tools_ok(ID_TWO_INDEXES_PIECES,
                 "S0:call_0:f|S1:call_0:g|A0:{\"x\":|A1:{\"y\":|A0:1}|A1:2}|", 2);
    assert_string_equal(ad_buf_str(&CALL(r, 0)->args), "{\"x\":1}");
    assert_string_equal(ad_buf_str(&CALL(r, 1)->args), "{\"y\":2}");
    done_result(&r);

    r = tools_ok(ID_REUSED_SAME_INDEX, "S0:call_0:f|A0:{}|S1:call_0:g|A1:{\"a\":1}|", 2);
    done_result(&r);

    r = tools_ok(HEADER_AGAIN, "S0:call_a:f|A0:{}|", 1);
    done_result(&r);

    /* a non-streamed body: the position decides */
    r = fold("{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,"
             "\"tool_calls\":[{\"id\":\"call_0\",\"type\":\"function\",\"function\":{\"name\":"
             "\"f\",\"arguments\":\"{\\\"x\\\":\\\"1\\\"}\"}},{\"id\":\"call_0\",\"type\":"
             "\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"{\\\"x\\\":\\\"2\\\"}\"}}"
             "]},\"finish_reason\":\"tool_calls\"}]}");
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(LOG(r), "S0:call_0:f|A0:{\"x\":\"1\"}|S1:call_0:g|A1:{\"x\":\"2\"}|");
    assert_int_equal(T(&r)->ncalls, 2);
    done_result(&r);
}

/* (d) whole calls, all at index 0, no ids: a name arriving after complete
 * arguments starts the next call. */
static const char SAME_INDEX_NO_IDS[] =
    TCS("{\"index\":0,\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}")
        TCS("{\"index\":0,\"function\":{\"name\":\"g\",\"arguments\":\"{\\\"a\\\":1}\"}}") TC_END;
/* the same, each call as a header and then its arguments */
static const char SAME_INDEX_NO_IDS_PIECES[] =
    TCS("{\"index\":0,\"function\":{\"name\":\"f\",\"arguments\":\"\"}}")
        TCS("{\"index\":0,\"function\":{\"arguments\":\" {} \"}}")
            TCS("{\"index\":0,\"function\":{\"name\":\"g\",\"arguments\":\"\"}}")
                TCS("{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}") TC_END;
/* a call without arguments, then another function */
static const char SAME_INDEX_NO_ARGS[] =
    TCS("{\"index\":0,\"function\":{\"name\":\"f\",\"arguments\":\"\"}}")
        TCS("{\"index\":0,\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}") TC_END;

static void same_index_whole_calls_no_ids(void **state)
{
    (void)state;
    result r = tools_ok(SAME_INDEX_NO_IDS, "S0::f|A0:{}|S1::g|A1:{\"a\":1}|", 2);
    assert_string_equal(ad_buf_str(&CALL(r, 0)->args), "{}");
    assert_string_equal(ad_buf_str(&CALL(r, 1)->name), "g");
    assert_string_equal(ad_buf_str(&CALL(r, 1)->args), "{\"a\":1}");
    done_result(&r);

    r = tools_ok(SAME_INDEX_NO_IDS_PIECES, "S0::f|A0: {} |S1::g|A1:{\"a\":1}|", 2);
    done_result(&r);

    r = tools_ok(SAME_INDEX_NO_ARGS, "S0::f|S1::g|A1:{}|", 2);
    assert_int_equal(CALL(r, 0)->args.len, 0);
    done_result(&r);
}

static void tool_call_index_range(void **state)
{
    (void)state;
    result r = check(EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":127,"
                        "\"id\":\"call_last\",\"function\":{\"name\":\"f\",\"arguments\":"
                        "\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}") DONE,
                     NULL, LF_ONLY);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_int_equal(T(&r)->ncalls, AD_CS_MAX_TOOL_CALLS);
    assert_string_equal(LOG(r), "S127:call_last:f|A127:{}|");
    done_result(&r);

    static const char *bad[] = {"128", "-1", "1000000000000", "0.0", "\"0\"", "true"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char s[512];
        snprintf(
            s, sizeof s,
            CONTENT(
                "x") "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{"
                     "\"index\":%s,\"id\":\"c\",\"function\":{\"name\":\"f\"}}]}}]}\n\n" CONTENT(
                         "y") STOP,
            bad[i]);
        r = check(s, NULL, LF_ONLY);
        assert_int_equal(r.feed_rc, AD_EINVAL);
        assert_int_equal(r.finish_rc, AD_EINVAL);
        assert_string_equal(LOG(r), "T:x|");
        assert_int_equal(T(&r)->ncalls, 0);
        assert_non_null(strstr(ad_cs_error(r.cs), "event 2: tool call"));
        done_result(&r);
    }
}

/* 129 distinct calls in one delta: the 129th has no slot. */
static void too_many_tool_calls(void **state)
{
    (void)state;
    ad_buf s;
    ad_buf_init(&s, 1 << 20);
    ad_buf_addstr(&s, "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[");
    for (int i = 0; i <= AD_CS_MAX_TOOL_CALLS; i++)
        ad_buf_printf(&s,
                      "%s{\"id\":\"call_%d\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}",
                      i ? "," : "", i);
    ad_buf_addstr(&s, "]}}]}\n\n" STOP);
    result r = run(ad_buf_str(&s), NULL);
    assert_int_equal(r.feed_rc, AD_ETOOBIG);
    assert_int_equal(T(&r)->ncalls, AD_CS_MAX_TOOL_CALLS);
    assert_string_equal(ad_buf_str(&CALL(r, 127)->id), "call_127");
    done_result(&r);
    ad_buf_free(&s);
}

/* vLLM: a whole call in one delta with arguments as a JSON object (some tool
 * parsers), then the finish chunk with stop_reason and a usage-only chunk. */
#define VLLM_HEAD                                                                                  \
    "{\"id\":\"chatcmpl-8a6f0e0b2e1a4b6f9c1d3e5f7a9b1c2d\",\"object\":\"chat.completion.chunk\","  \
    "\"created\":1735000000,\"model\":\"Qwen/Qwen2.5-7B-Instruct\",\"choices\":["
static const char VLLM_OBJECT_ARGS[] =
    EV(VLLM_HEAD "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                 "\"logprobs\":null,\"finish_reason\":null}]}")
        EV(VLLM_HEAD
           "{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":"
           "\"chatcmpl-tool-4f1c2a9e8b7d4c3a\",\"type\":\"function\",\"index\":0,"
           "\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\": \"Paris\", "
           "\"unit\": \"celsius\", \"days\": [1, 2], \"nested\": {\"a\": null, \"b\": true, "
           "\"s\": \"\xC3\xA9\\\"x\\u0001\"}}}}]},\"logprobs\":null,\"finish_reason\":null}]}")
            EV(VLLM_HEAD "{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"chatcmpl-tool-77aa\","
                         "\"type\":\"function\",\"index\":1,\"function\":{\"name\":\"get_time\","
                         "\"arguments\":\"{\\\"tz\\\": \\\"UTC\\\"}\"}}]},\"logprobs\":null,"
                         "\"finish_reason\":null}]}")
                EV(VLLM_HEAD
                   "{\"index\":0,\"delta\":{\"content\":\"\"},\"logprobs\":null,\"finish_reason\":"
                   "\"tool_calls\",\"stop_reason\":null}]}")
                    EV(VLLM_HEAD "],\"usage\":{\"prompt_tokens\":312,\"total_tokens\":345,"
                                 "\"completion_tokens\":33}}") DONE;

static void vllm_whole_calls_object_args(void **state)
{
    (void)state;
    result r = check(VLLM_OBJECT_ARGS, NULL, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    const char *want0 = "{\"city\":\"Paris\",\"unit\":\"celsius\",\"days\":[1,2],\"nested\":"
                        "{\"a\":null,\"b\":true,\"s\":\"\xC3\xA9\\\"x\\u0001\"}}";
    assert_string_equal(ad_buf_str(&CALL(r, 0)->args), want0);
    assert_string_equal(ad_buf_str(&CALL(r, 0)->id), "chatcmpl-tool-4f1c2a9e8b7d4c3a");
    assert_string_equal(ad_buf_str(&CALL(r, 1)->args), "{\"tz\": \"UTC\"}");
    ad_buf want_log;
    ad_buf_init(&want_log, 4096);
    ad_buf_addstr(&want_log, "S0:chatcmpl-tool-4f1c2a9e8b7d4c3a:get_weather|A0:");
    esc(&want_log, want0, strlen(want0)); /* the transcript escapes backslashes */
    ad_buf_addstr(&want_log, "|S1:chatcmpl-tool-77aa:get_time|A1:{\"tz\": \"UTC\"}|");
    assert_string_equal(LOG(r), ad_buf_str(&want_log));
    ad_buf_free(&want_log);
    assert_int_equal(T(&r)->text.len, 0);
    assert_string_equal(T(&r)->finish_reason, "tool_calls");
    assert_usage(&r, 312, 33, 345);
    assert_string_equal(T(&r)->model, "Qwen/Qwen2.5-7B-Instruct");
    done_result(&r);
}

/* content null vs absent vs "" (Ollama, LiteLLM): none produces text; a
 * usage object without total_tokens gets prompt + completion. */
static const char CONTENT_NULLS[] = EV(
    "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}]}")
    EV("{\"choices\":[{\"index\":0,\"delta\":{}}]}") EV(
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"}}]}")
        EV("{\"choices\":[{\"index\":0,\"delta\":{\"content\":null,\"role\":null,\"function_call\":"
           "null,\"tool_calls\":null,\"refusal\":null}}]}") EV("{\"choices\":[{\"index\":0}]}")
            EV("{\"choices\":[{\"index\":0,\"delta\":null,\"finish_reason\":null}],\"usage\":null}")
                EV("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\",\"reasoning_content\":"
                   "\"hmm\","
                   "\"reasoning\":\"hmm\"}}]}") EV("{\"choices\":[{\"delta\":{\"content\":[{"
                                                   "\"type\":\"thinking\",\"thinking\":\"no\"},"
                                                   "{\"type\":\"text\",\"text\":\"!\"}]}}]}")
                    EV("{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
                       "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}") DONE;

static void content_null_absent_empty(void **state)
{
    (void)state;
    result r = check(CONTENT_NULLS, NULL, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(LOG(r), "T:ok|T:!|");
    assert_string_equal(TEXT(r), "ok!");
    assert_usage(&r, 7, 2, 9);
    done_result(&r);
}

/* llama.cpp server: usage in the finish chunk, with timings. */
#define LCPP_TAIL                                                                                  \
    "\"created\":1736530000,\"id\":\"chatcmpl-1Qk2W8Rj3mVJfZ7aBcD9eF0gH1iJ2kL3\",\"model\":"       \
    "\"gpt-3.5-turbo\",\"system_fingerprint\":\"b4466-924518e2\",\"object\":"                      \
    "\"chat.completion.chunk\""
static const char LLAMACPP[] =
    EV("{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"role\":\"assistant\","
       "\"content\":null}}]," LCPP_TAIL "}")
        EV("{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\"Bonjour\"}}]"
           "," LCPP_TAIL "}") EV("{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{"
                                 "\"content\":\" le\"}}]," LCPP_TAIL "}")
            EV("{\"choices\":[{\"finish_reason\":\"length\",\"index\":0,\"delta\":{}}]," LCPP_TAIL
               ",\"usage\":{\"completion_tokens\":16,\"prompt_tokens\":12,\"total_tokens\":28},"
               "\"timings\":{\"prompt_n\":12,\"prompt_ms\":10.5,\"prompt_per_token_ms\":0.875,"
               "\"prompt_per_second\":1142.8,\"predicted_n\":16,\"predicted_ms\":250.3,"
               "\"predicted_per_token_ms\":15.6,\"predicted_per_second\":63.9}}") DONE;

static void llamacpp_stream(void **state)
{
    (void)state;
    result r = check(LLAMACPP, NULL, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(TEXT(r), "Bonjour le");
    assert_string_equal(T(&r)->finish_reason, "length");
    assert_usage(&r, 12, 16, 28);
    assert_string_equal(T(&r)->id, "chatcmpl-1Qk2W8Rj3mVJfZ7aBcD9eF0gH1iJ2kL3");
    done_result(&r);
}

/* Azure OpenAI: prompt_filter_results first (empty id/model), per-choice
 * content_filter_results, then a flagged completion. */
#define AZ_SAFE                                                                                    \
    "{\"hate\":{\"filtered\":false,\"severity\":\"safe\"},\"self_harm\":{\"filtered\":false,"      \
    "\"severity\":\"safe\"},\"sexual\":{\"filtered\":false,\"severity\":\"safe\"},\"violence\":"   \
    "{\"filtered\":false,\"severity\":\"safe\"}}"
#define AZ_TAIL                                                                                    \
    "\"created\":1741000000,\"id\":\"chatcmpl-B6xyzAzure\",\"model\":\"gpt-4o-2024-11-20\","       \
    "\"object\":\"chat.completion.chunk\",\"system_fingerprint\":\"fp_b705f0c291\"}"
#define AZ_PROMPT                                                                                  \
    EV("{\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\","                 \
       "\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{\"hate\":"      \
       "{\"filtered\":false,\"severity\":\"safe\"},\"jailbreak\":{\"filtered\":false,"             \
       "\"detected\":false},\"self_harm\":{\"filtered\":false,\"severity\":\"safe\"},\"sexual\":"  \
       "{\"filtered\":false,\"severity\":\"safe\"},\"violence\":{\"filtered\":false,"              \
       "\"severity\":\"safe\"}}}]}")
static const char AZURE_OK[] = AZ_PROMPT EV(
    "{\"choices\":[{\"content_filter_results\":{},\"delta\":{\"content\":\"\",\"refusal\":null,"
    "\"role\":\"assistant\"},\"finish_reason\":null,\"index\":0,\"logprobs\":null}]," AZ_TAIL)
    EV("{\"choices\":[{\"content_filter_results\":" AZ_SAFE ",\"delta\":{\"content\":\"Sure\"},"
       "\"finish_reason\":null,\"index\":0,\"logprobs\":null}]," AZ_TAIL)
        EV("{\"choices\":[{\"content_filter_results\":{\"protected_material_code\":{\"filtered\":"
           "false,\"detected\":false},\"protected_material_text\":{\"filtered\":false,\"detected\":"
           "false}},\"delta\":{},\"finish_reason\":\"stop\",\"index\":0,\"logprobs\":null}]"
           "," AZ_TAIL)
            EV("{\"choices\":[],\"created\":1741000000,\"id\":\"chatcmpl-B6xyzAzure\",\"model\":"
               "\"gpt-4o-2024-11-20\",\"object\":\"chat.completion.chunk\",\"system_fingerprint\":"
               "\"fp_b705f0c291\",\"usage\":{\"completion_tokens\":1,\"prompt_tokens\":9,"
               "\"total_tokens\":10}}") DONE;
static const char AZURE_FLAGGED[] = AZ_PROMPT EV(
    "{\"choices\":[{\"content_filter_results\":" AZ_SAFE ",\"delta\":{\"content\":\"Once\"},"
    "\"finish_reason\":null,\"index\":0,\"logprobs\":null}]," AZ_TAIL)
    EV("{\"choices\":[{\"content_filter_results\":{\"hate\":{\"filtered\":false,\"severity\":"
       "\"safe\"},\"self_harm\":{\"filtered\":false,\"severity\":\"safe\"},\"sexual\":"
       "{\"filtered\":false,\"severity\":\"safe\"},\"violence\":{\"filtered\":true,\"severity\":"
       "\"medium\"}},\"delta\":{},\"finish_reason\":null,\"index\":0,\"logprobs\":null}]," AZ_TAIL)
        EV("{\"choices\":[{\"content_filter_results\":{},\"delta\":{},\"finish_reason\":\"stop\","
           "\"index\":0}]," AZ_TAIL) DONE;
static const char AZURE_FINISH_FILTER[] = AZ_PROMPT EV(
    "{\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":null,\"index\":0}]," AZ_TAIL)
    EV("{\"choices\":[{\"content_filter_results\":{\"error\":{\"code\":\"content_filter_error\","
       "\"message\":\"The contents are not filtered\"}},\"delta\":{},\"finish_reason\":"
       "\"content_filter\",\"index\":0}]," AZ_TAIL) DONE;

static void azure_filters(void **state)
{
    (void)state;
    result r = check(AZURE_OK, NULL, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(LOG(r), "T:Sure|");
    assert_false(T(&r)->content_filtered);
    assert_string_equal(T(&r)->id, "chatcmpl-B6xyzAzure"); /* "" never overwrote it */
    assert_string_equal(T(&r)->model, "gpt-4o-2024-11-20");
    assert_usage(&r, 9, 1, 10);
    done_result(&r);

    r = check(AZURE_FLAGGED, NULL, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_true(T(&r)->content_filtered);
    assert_string_equal(T(&r)->finish_reason, "stop");
    assert_string_equal(TEXT(r), "Once");
    done_result(&r);

    r = check(AZURE_FINISH_FILTER, NULL, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_true(T(&r)->content_filtered);
    assert_string_equal(T(&r)->finish_reason, "content_filter");
    done_result(&r);
}

/* OpenAI structured outputs: the refusal arrives in delta.refusal pieces. */
static const char REFUSAL[] =
    OAI("{\"role\":\"assistant\",\"content\":null,\"refusal\":\"\"}", "null")
        OAI("{\"refusal\":\"I'm sorry\"}", "null")
            OAI("{\"refusal\":\", I can't assist with that request.\"}", "null")
                OAI("{}", "\"stop\"") OAI_USAGE(150, 10, 160) DONE;

static void refusal_accumulates(void **state)
{
    (void)state;
    result r = check(REFUSAL, NULL, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(ad_buf_str(&T(&r)->refusal),
                        "I'm sorry, I can't assist with that request.");
    assert_string_equal(LOG(r), "");
    assert_int_equal(T(&r)->text.len, 0);
    assert_string_equal(T(&r)->finish_reason, "stop");
    done_result(&r);
}

static void upstream_errors(void **state)
{
    (void)state;
    static const struct {
        const char *stream;
        const char *msg;
        const char *code;
    } cases[] = {
        /* OpenAI, mid-stream, as an `event: error` */
        {CONTENT("Partial") "event: error\ndata: {\"error\":{\"message\":\"The server had an "
                            "error while processing your request. Sorry about that!\",\"type\":"
                            "\"server_error\",\"param\":null,\"code\":null}}\n\n" CONTENT("more")
                                STOP DONE,
         "The server had an error while processing your request. Sorry about that!",
         "server_error"},
        {CONTENT("Partial") EV("{\"error\":{\"message\":\"Rate limit reached for gpt-4o in "
                               "organization org-abc on tokens per min (TPM): Limit 30000, Used "
                               "29844, Requested 1204. Please try again in 2.096s.\",\"type\":"
                               "\"tokens\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}"),
         "Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit "
         "30000, Used 29844, Requested 1204. Please try again in 2.096s.",
         "rate_limit_exceeded"},
        /* older vLLM: the error object itself */
        {CONTENT("Partial") EV("{\"object\":\"error\",\"message\":\"This model's maximum context "
                               "length is 4096 tokens.\",\"type\":\"BadRequestError\",\"param\":"
                               "null,\"code\":400}"),
         "This model's maximum context length is 4096 tokens.", "400"},
        /* llama.cpp server */
        {CONTENT("Partial") EV("{\"error\":{\"code\":500,\"message\":\"Failed to parse tool "
                               "call\",\"type\":\"server_error\"}}"),
         "Failed to parse tool call", "500"},
        /* OpenRouter: an error inside an otherwise normal chunk */
        {CONTENT("Partial") EV("{\"id\":\"gen-1754-abc\",\"object\":\"chat.completion.chunk\","
                               "\"created\":1754911234,\"model\":\"anthropic/claude-sonnet-4\","
                               "\"provider\":\"Anthropic\",\"error\":{\"code\":502,\"message\":"
                               "\"Provider returned error\"},\"choices\":[{\"index\":0,\"delta\":"
                               "{\"content\":\"\"},\"finish_reason\":\"error\","
                               "\"native_finish_reason\":\"error\"}]}"),
         "Provider returned error", "502"},
        {CONTENT("Partial") EV("{\"error\":\"upstream timed out\"}"), "upstream timed out", ""},
        {CONTENT("Partial") EV("{\"error\":{\"type\":\"overloaded_error\"}}"),
         "{\"type\":\"overloaded_error\"}", "overloaded_error"},
    };
    /* "error" that is null, false or "" is not an error */
    result ok = check(CONTENT("a") EV("{\"error\":null,\"choices\":[]}") EV("{\"error\":false}")
                          EV("{\"error\":\"\"}") STOP,
                      NULL, ALL_EOLS);
    assert_int_equal(ok.finish_rc, AD_OK);
    assert_string_equal(LOG(ok), "T:a|");
    done_result(&ok);

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        result r = check(cases[i].stream, NULL, ALL_EOLS);
        assert_int_equal(r.feed_rc, AD_ESTATE);
        assert_int_equal(r.finish_rc, AD_ESTATE);
        assert_string_equal(ad_cs_error(r.cs), cases[i].msg);
        assert_string_equal(ad_cs_error_code(r.cs), cases[i].code);
        assert_string_equal(LOG(r), "T:Partial|");
        assert_string_equal(TEXT(r), "Partial");
        assert_string_equal(T(&r)->finish_reason, "");
        /* sticky: later input changes nothing */
        assert_int_equal(ad_cs_feed(r.cs, CONTENT("z"), strlen(CONTENT("z"))), AD_ESTATE);
        assert_string_equal(TEXT(r), "Partial");
        done_result(&r);
    }

    /* A long message is cut to a bounded, valid UTF-8 prefix. */
    ad_buf s;
    ad_buf_init(&s, 1 << 16);
    ad_buf_addstr(&s, "data: {\"error\":{\"message\":\"");
    for (int i = 0; i < 1000; i++)
        ad_buf_addstr(&s, "\xE2\x82\xAC"); /* the euro sign, 3 bytes */
    ad_buf_addstr(&s, "\"}}\n\n");
    result r = run(ad_buf_str(&s), NULL);
    assert_int_equal(r.feed_rc, AD_ESTATE);
    const char *m = ad_cs_error(r.cs);
    assert_true(strlen(m) > 400 && strlen(m) < 512);
    assert_int_equal(strlen(m) % 3, 0);
    assert_true(ad_utf8_valid(m, strlen(m)));
    done_result(&r);
    ad_buf_free(&s);
}

static void malformed_chunks(void **state)
{
    (void)state;
    static const struct {
        const char *data;
        const char *msg_part;
    } cases[] = {
        {"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]", "malformed JSON"},
        {"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\xC3\x28\"}}]}", "malformed JSON"},
        {"keep-alive", "malformed JSON"},
        {"{\"a\":1} {\"b\":2}", "malformed JSON"},
        {"[1,2]", "chunk is not a JSON object"},
        {"\"hello\"", "chunk is not a JSON object"},
        {"42", "chunk is not a JSON object"},
        {"null", "chunk is not a JSON object"},
        {"{\"choices\":{}}", "\"choices\" is not an array"},
        {"{\"choices\":[7]}", "choice 0 is not an object"},
        {"{\"choices\":[{\"index\":\"0\"}]}", "choice \"index\" is not an integer"},
        {"{\"choices\":[{\"index\":0,\"delta\":\"x\"}]}", "\"delta\" is not an object"},
        {"{\"choices\":[{\"index\":0,\"delta\":{\"content\":5}}]}", "\"content\" is neither"},
        {"{\"choices\":[{\"index\":0,\"delta\":{\"content\":[5]}}]}", "content part 0"},
        {"{\"choices\":[{\"index\":0,\"delta\":{\"refusal\":[]}}]}", "\"refusal\" is not"},
        {"{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":{}}}]}", "\"tool_calls\" is not"},
        {"{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[1]}}]}", "is not an object"},
        {"{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"function\":[]}]}}]}",
         "\"function\" is not an object"},
        {"{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":1}]}}]}",
         "\"id\" is not a string"},
        {"{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"function\":{\"name\":{}}}]}}]}",
         "\"name\" is not a string"},
        {"{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":"
         "1}}]}}]}",
         "\"arguments\" is neither"},
        {"{\"choices\":[{\"index\":0,\"finish_reason\":1}]}", "\"finish_reason\" is not"},
        {"{\"choices\":[],\"usage\":[]}", "\"usage\" is not an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char s[1024];
        snprintf(s, sizeof s, "%sdata: %s\n\n%s%s", CONTENT("ok"), cases[i].data, CONTENT("no"),
                 DONE);
        result r = check(s, NULL, LF_ONLY);
        assert_int_equal(r.feed_rc, AD_EINVAL);
        assert_int_equal(r.finish_rc, AD_EINVAL);
        assert_string_equal(LOG(r), "T:ok|");
        const char *m = ad_cs_error(r.cs);
        if (!strstr(m, cases[i].msg_part) || !ad_str_has_prefix(m, "event 2: "))
            fail_msg("case %zu: message [%s], want [%s]", i, m, cases[i].msg_part);
        assert_true(ad_utf8_valid(m, strlen(m)));
        assert_string_equal(ad_cs_error_code(r.cs), "");
        done_result(&r);
    }
}

/* A JSON chunk of exactly n bytes (padded with blanks before the '}'). */
static void chunk_of_size(ad_buf *b, size_t n, const char *content)
{
    size_t before = b->len;
    ad_buf_printf(b, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"}}]", content);
    size_t used = b->len - before - strlen("data: ");
    assert_true(used + 1 <= n);
    for (size_t i = used; i + 1 < n; i++)
        ad_buf_addc(b, ' ');
    ad_buf_addstr(b, "}\n\n");
}

static void limits(void **state)
{
    (void)state;
    ad_cs_limits lim = {.max_event = 100, .max_text = 10, .max_args = 8};
    ad_buf s;
    ad_buf_init(&s, 64 << 20);

    /* max_event: exactly 100 bytes of data pass, 101 do not */
    chunk_of_size(&s, 100, "a");
    ad_buf_addstr(&s, STOP);
    result r = check(ad_buf_str(&s), &lim, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(TEXT(r), "a");
    done_result(&r);
    ad_buf_reset(&s);
    chunk_of_size(&s, 101, "a");
    ad_buf_addstr(&s, STOP);
    r = check(ad_buf_str(&s), &lim, ALL_EOLS);
    assert_int_equal(r.feed_rc, AD_ETOOBIG);
    assert_string_equal(ad_cs_error(r.cs), "event 1: SSE event larger than max_event (100 bytes)");
    assert_string_equal(LOG(r), "");
    done_result(&r);

    /* multi-line data counts its joining newlines; comments are not buffered */
    ad_buf_reset(&s);
    ad_buf_addc(&s, ':');
    for (int i = 0; i < 10000; i++)
        ad_buf_addc(&s, 'x');
    ad_buf_addstr(&s, "\nretry: ");
    for (int i = 0; i < 10000; i++)
        ad_buf_addc(&s, '9');
    ad_buf_addstr(&s, "\n\n");
    for (size_t total = 100; total <= 101; total++) {
        /* 23 + LF, 33 + LF, then blanks and the closing brace up to total */
        ad_buf_addstr(&s, "data: {\"choices\":[{\"index\":0,\n"
                          "data: \"delta\":{\"content\":\"b\"}}]        \n"
                          "data: ");
        for (size_t i = 24 + 34 + 1; i < total; i++)
            ad_buf_addc(&s, ' ');
        ad_buf_addstr(&s, "}\n\n" STOP);
        r = check(ad_buf_str(&s), &lim, ALL_EOLS);
        assert_int_equal(r.feed_rc, total == 100 ? AD_OK : AD_ETOOBIG);
        assert_string_equal(TEXT(r), total == 100 ? "b" : "");
        done_result(&r);
        ad_buf_reset(&s);
    }

    /* max_text */
    r = check(CONTENT("12345") CONTENT("67890") CONTENT("1") STOP, &lim, ALL_EOLS);
    assert_int_equal(r.feed_rc, AD_ETOOBIG);
    assert_string_equal(TEXT(r), "1234567890");
    assert_string_equal(LOG(r), "T:12345|T:67890|");
    assert_string_equal(ad_cs_error(r.cs), "event 3: assistant text exceeds max_text (10 bytes)");
    done_result(&r);
    r = check(EV("{\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"12345678901\"}}]}"), &lim,
              ALL_EOLS);
    assert_int_equal(r.feed_rc, AD_ETOOBIG);
    done_result(&r);

    /* max_args: per call, string pieces and serialised objects alike */
#define ARGS8                                                                                      \
    EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c0\","         \
       "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":\"}}]}}]}")                        \
    EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"          \
       "{\"arguments\":\"12}\"}},{\"index\":1,\"id\":\"c1\",\"function\":{\"name\":\"g\","         \
       "\"arguments\":{\"b\":12}}}]}}]}")
    lim = (ad_cs_limits){.max_args = 8};
    r = check(ARGS8 STOP, &lim, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(ad_buf_str(&CALL(r, 0)->args), "{\"a\":12}");
    assert_string_equal(ad_buf_str(&CALL(r, 1)->args), "{\"b\":12}");
    done_result(&r);
    r = check(ARGS8 EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,"
                       "\"function\":{\"arguments\":\" \"}}]}}]}") STOP,
              &lim, ALL_EOLS);
    assert_int_equal(r.feed_rc, AD_ETOOBIG);
    assert_string_equal(ad_cs_error(r.cs),
                        "event 3: arguments of tool call 1 exceed max_args (8 bytes)");
    done_result(&r);
    r = check(EV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\","
                 "\"function\":{\"name\":\"f\",\"arguments\":{\"bb\":1234}}}]}}]}") STOP,
              &lim, ALL_EOLS);
    assert_int_equal(r.feed_rc, AD_ETOOBIG);
    assert_int_equal(CALL(r, 0)->args.len, 0); /* left as it was */
    assert_string_equal(LOG(r), "");
    done_result(&r);

    /* zero limits mean 1 MiB / 8 MiB / 1 MiB (and so does NULL) */
    const ad_cs_limits zero = {0, 0, 0};
    for (int pass = 0; pass < 2; pass++) {
        const ad_cs_limits *l = pass ? NULL : &zero;
        ad_buf_reset(&s);
        chunk_of_size(&s, (size_t)1 << 20, "x");
        ad_buf_addstr(&s, STOP);
        r = run_ex(ad_buf_str(&s), s.len, l, RANDOM, 7, 0);
        assert_int_equal(r.finish_rc, AD_OK);
        done_result(&r);
        ad_buf_reset(&s);
        chunk_of_size(&s, ((size_t)1 << 20) + 1, "x");
        r = run_ex(ad_buf_str(&s), s.len, l, WHOLE, 0, 0);
        assert_int_equal(r.feed_rc, AD_ETOOBIG);
        done_result(&r);

        /* text: 8 chunks of 1,000,000 bytes fit in 8 MiB, a 9th does not */
        ad_buf_reset(&s);
        char *big = malloc(1000001);
        memset(big, 'y', 1000000);
        big[1000000] = '\0';
        for (int i = 0; i < 9; i++)
            chunk_of_size(&s, 1000100, big);
        free(big);
        r = run_ex(ad_buf_str(&s), s.len, l, WHOLE, 0, 0);
        assert_int_equal(r.feed_rc, AD_ETOOBIG);
        assert_int_equal(T(&r)->text.len, 8000000);
        assert_non_null(strstr(ad_cs_error(r.cs), "event 9: assistant text exceeds max_text "
                                                  "(8388608 bytes)"));
        done_result(&r);

        /* args: one call may take 1 MiB */
        ad_buf_reset(&s);
        ad_buf_addstr(&s, "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":"
                          "0,\"id\":\"c\",\"function\":{\"name\":\"f\",\"arguments\":\"");
        for (int i = 0; i < 600000; i++)
            ad_buf_addc(&s, 'z');
        ad_buf_addstr(&s, "\"}}]}}]}\n\n");
        char *twice = strdup(ad_buf_str(&s));
        ad_buf_addstr(&s, twice);
        free(twice);
        r = run_ex(ad_buf_str(&s), s.len, l, WHOLE, 0, 0);
        assert_int_equal(r.feed_rc, AD_ETOOBIG);
        assert_int_equal(CALL(r, 0)->args.len, 600000);
        done_result(&r);
    }
    ad_buf_free(&s);
}

/* ---- non-streaming bodies ---- */

static const char COMPLETION_TEXT[] = "{\n"
                                      "  \"id\": \"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG\",\n"
                                      "  \"object\": \"chat.completion\",\n"
                                      "  \"created\": 1741570283,\n"
                                      "  \"model\": \"gpt-4o-2024-08-06\",\n"
                                      "  \"choices\": [\n"
                                      "    {\n"
                                      "      \"index\": 0,\n"
                                      "      \"message\": {\n"
                                      "        \"role\": \"assistant\",\n"
                                      "        \"content\": \"The image shows a wooden boardwalk "
                                      "through tall green grass.\",\n"
                                      "        \"refusal\": null,\n"
                                      "        \"annotations\": []\n"
                                      "      },\n"
                                      "      \"logprobs\": null,\n"
                                      "      \"finish_reason\": \"stop\"\n"
                                      "    }\n"
                                      "  ],\n"
                                      "  \"usage\": {\n"
                                      "    \"prompt_tokens\": 1117,\n"
                                      "    \"completion_tokens\": 46,\n"
                                      "    \"total_tokens\": 1163,\n"
                                      "    \"prompt_tokens_details\": {\"cached_tokens\": 0, "
                                      "\"audio_tokens\": 0},\n"
                                      "    \"completion_tokens_details\": {\"reasoning_tokens\": "
                                      "0, \"audio_tokens\": 0, \"accepted_prediction_tokens\": 0, "
                                      "\"rejected_prediction_tokens\": 0}\n"
                                      "  },\n"
                                      "  \"service_tier\": \"default\",\n"
                                      "  \"system_fingerprint\": \"fp_fc9f1d7035\"\n"
                                      "}\n";

static const char COMPLETION_TOOLS[] =
    "{\"id\":\"chatcmpl-abc123\",\"object\":\"chat.completion\",\"created\":1699896916,"
    "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
    "\"content\":null,\"tool_calls\":[{\"id\":\"call_abc123\",\"type\":\"function\","
    "\"function\":{\"name\":\"get_current_weather\",\"arguments\":\"{\\n\\\"location\\\": "
    "\\\"Boston, MA\\\"\\n}\"}},{\"id\":\"call_def456\",\"type\":\"function\",\"function\":"
    "{\"name\":\"get_time\",\"arguments\":\"\"}}],\"refusal\":null},\"logprobs\":null,"
    "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":82,\"completion_tokens\":17,"
    "\"total_tokens\":99}}";

/* Ollama /v1 non-streaming, arguments as an object, no ids. */
static const char COMPLETION_OLLAMA[] =
    "{\"id\":\"chatcmpl-636\",\"object\":\"chat.completion\",\"created\":1731000000,\"model\":"
    "\"qwen2.5:7b\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"message\":"
    "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"call_x1\",\"index\":0,"
    "\"type\":\"function\",\"function\":{\"name\":\"add\",\"arguments\":{\"a\":3,\"b\":12}}},"
    "{\"id\":\"call_x2\",\"index\":0,\"type\":\"function\",\"function\":{\"name\":\"add\","
    "\"arguments\":{\"a\":11,\"b\":49}}}]},\"finish_reason\":\"stop\"}],\"usage\":"
    "{\"prompt_tokens\":250,\"completion_tokens\":44,\"total_tokens\":294}}";

static result fold(const char *body)
{
    result res = start(NULL, 0);
    res.feed_rc = ad_cs_feed_completion(res.cs, body, strlen(body));
    res.finish_rc = ad_cs_finish(res.cs);
    snapshot(&res);
    return res;
}

static void completion_bodies(void **state)
{
    (void)state;
    result r = fold(COMPLETION_TEXT);
    assert_int_equal(r.feed_rc, AD_OK);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(LOG(r), "T:The image shows a wooden boardwalk through tall green grass.|");
    assert_string_equal(T(&r)->finish_reason, "stop");
    assert_usage(&r, 1117, 46, 1163);
    assert_true(T(&r)->done);
    assert_string_equal(T(&r)->id, "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG");
    /* the same body arriving through ad_cs_feed (stream:true ignored) gives
     * the same result, callbacks fired at ad_cs_finish */
    result same_r = check(COMPLETION_TEXT, NULL, ALL_EOLS);
    assert_string_equal(ad_buf_str(&r.snap), ad_buf_str(&same_r.snap));
    done_result(&same_r);
    done_result(&r);

    r = fold(COMPLETION_TOOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(LOG(r), "S0:call_abc123:get_current_weather|"
                                "A0:{\\n\"location\": \"Boston, MA\"\\n}|S1:call_def456:get_time|");
    assert_int_equal(T(&r)->ncalls, 2);
    assert_string_equal(T(&r)->finish_reason, "tool_calls");
    assert_int_equal(T(&r)->text.len, 0);
    assert_usage(&r, 82, 17, 99);
    result same_r2 = check(COMPLETION_TOOLS, NULL, LF_ONLY);
    assert_string_equal(ad_buf_str(&r.snap), ad_buf_str(&same_r2.snap));
    done_result(&same_r2);
    done_result(&r);

    /* position, not the (bogus) index, decides the slot */
    r = fold(COMPLETION_OLLAMA);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(LOG(r), "S0:call_x1:add|A0:{\"a\":3,\"b\":12}|"
                                "S1:call_x2:add|A1:{\"a\":11,\"b\":49}|");
    assert_string_equal(T(&r)->finish_reason, "stop");
    done_result(&r);

    r = fold("{\"id\":\"chatcmpl-r\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
             "\"message\":{\"role\":\"assistant\",\"content\":null,\"refusal\":\"I'm sorry, I "
             "cannot help with that.\"},\"finish_reason\":\"stop\"}]}");
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(ad_buf_str(&T(&r)->refusal), "I'm sorry, I cannot help with that.");
    assert_string_equal(LOG(r), "");
    done_result(&r);

    /* Azure: content filtered completion */
    r = fold("{\"choices\":[{\"content_filter_results\":{\"hate\":{\"filtered\":true,"
             "\"severity\":\"high\"}},\"finish_reason\":\"content_filter\",\"index\":0,"
             "\"message\":{\"content\":null,\"role\":\"assistant\"}}],\"created\":1,\"id\":"
             "\"chatcmpl-az\",\"model\":\"gpt-4o\",\"object\":\"chat.completion\"}");
    assert_int_equal(r.finish_rc, AD_OK);
    assert_true(T(&r)->content_filtered);
    done_result(&r);

    /* an error body */
    static const char ERR[] = "{\n  \"error\": {\n    \"message\": \"Incorrect API key provided: "
                              "sk-proj-****. You can find your API key at "
                              "https://platform.openai.com/account/api-keys.\",\n    \"type\": "
                              "\"invalid_request_error\",\n    \"param\": null,\n    \"code\": "
                              "\"invalid_api_key\"\n  }\n}\n";
    r = fold(ERR);
    assert_int_equal(r.feed_rc, AD_ESTATE);
    assert_int_equal(r.finish_rc, AD_ESTATE);
    assert_string_equal(ad_cs_error_code(r.cs), "invalid_api_key");
    assert_true(ad_str_has_prefix(ad_cs_error(r.cs), "Incorrect API key provided"));
    assert_false(T(&r)->done);
    result same_r3 = check(ERR, NULL, ALL_EOLS);
    assert_int_equal(same_r3.feed_rc, AD_OK);       /* buffered... */
    assert_int_equal(same_r3.finish_rc, AD_ESTATE); /* ...and folded at the end */
    assert_string_equal(ad_cs_error(same_r3.cs), ad_cs_error(r.cs));
    done_result(&same_r3);
    done_result(&r);

    r = fold("{\"choices\":[{\"index\":0,\"message\":{\"content\":\"x\"}}]");
    assert_int_equal(r.feed_rc, AD_EINVAL);
    assert_true(ad_str_has_prefix(ad_cs_error(r.cs), "response body: malformed JSON"));
    done_result(&r);
    r = fold("[]");
    assert_int_equal(r.feed_rc, AD_EINVAL);
    assert_string_equal(ad_cs_error(r.cs), "response body: response is not a JSON object");
    done_result(&r);

    /* only on a fresh parser */
    ad_cs *cs = ad_cs_new(NULL, NULL, NULL);
    assert_int_equal(ad_cs_feed(cs, CONTENT("a"), strlen(CONTENT("a"))), AD_OK);
    assert_int_equal(ad_cs_feed_completion(cs, COMPLETION_TEXT, strlen(COMPLETION_TEXT)),
                     AD_ESTATE);
    ad_cs_free(cs);
}

/* ---- end of input ---- */

static void finish_rules(void **state)
{
    (void)state;
    /* truncated: neither [DONE] nor a finish_reason */
    result r = check(OAI("{\"role\":\"assistant\",\"content\":\"\"}", "null")
                         OAI("{\"content\":\"Hel\"}", "null"),
                     NULL, ALL_EOLS);
    assert_int_equal(r.feed_rc, AD_OK);
    assert_int_equal(r.finish_rc, AD_EINVAL);
    assert_string_equal(ad_cs_error(r.cs),
                        "stream ended before [DONE] and without a finish_reason (2 events)");
    assert_string_equal(TEXT(r), "Hel");
    done_result(&r);

    /* a finish_reason without [DONE] is a complete answer; the half event
     * after it (no blank line) is dropped without a callback */
    r = check(CONTENT("A") STOP CONTENT("B") "data: {\"choices\":[{\"index\":0,\"delta\":"
                                             "{\"content\":\"C\"}}]}\n",
              NULL, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(LOG(r), "T:A|T:B|");
    assert_false(T(&r)->done);
    done_result(&r);
    r = check(CONTENT("A") STOP "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"C\"}}]}",
              NULL, LF_ONLY);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(LOG(r), "T:A|");
    done_result(&r);

    /* nothing at all, or only blank lines and comments */
    r = run("", NULL);
    assert_int_equal(r.finish_rc, AD_EINVAL);
    done_result(&r);
    r = check("\n\n: hi\n\n", NULL, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_EINVAL);
    done_result(&r);

    /* not a JSON body: the first non-blank byte is not '{', even when it
     * sits in the middle of a long ignored line */
    r = check("            ) {\"choices\":[{\"index\":0,\"finish_reason\":\"stop\"}]}\n", NULL,
              ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_EINVAL);
    assert_string_equal(T(&r)->finish_reason, "");
    done_result(&r);
    r = check(" \n\t\n {\"choices\":[{\"index\":0,\"finish_reason\":\"stop\"}]}\n", NULL, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_string_equal(T(&r)->finish_reason, "stop");
    done_result(&r);

    /* finish is idempotent; feeding after it is a misuse */
    ad_cs *cs = ad_cs_new(NULL, NULL, NULL);
    assert_int_equal(ad_cs_feed(cs, OPENAI_TEXT, strlen(OPENAI_TEXT)), AD_OK);
    assert_int_equal(ad_cs_finish(cs), AD_OK);
    assert_int_equal(ad_cs_finish(cs), AD_OK);
    assert_int_equal(ad_cs_feed(cs, "data: x\n\n", 9), AD_ESTATE);
    assert_int_equal(ad_cs_finish(cs), AD_ESTATE);
    ad_cs_free(cs);
}

/* A failing callback stops everything; its error is returned and sticks. */
static void callback_failure_sticks(void **state)
{
    (void)state;
    /* callbacks in OPENAI_TOOLS: S0 A0 A0 A0 S1 A1 A1 */
    for (int at = 1; at <= 7; at++) {
        size_t n = strlen(OPENAI_TOOLS);
        result r = run_ex(OPENAI_TOOLS, n, NULL, BYTES, 0, at);
        assert_int_equal(r.feed_rc, AD_EIO);
        assert_int_equal(r.finish_rc, AD_EIO);
        assert_non_null(strstr(ad_cs_error(r.cs), "callback failed: i/o error"));
        /* the transcript holds exactly `at` callbacks */
        int bars = 0;
        for (const char *p = LOG(r); *p; p++)
            bars += *p == '|';
        assert_int_equal(bars, at);
        assert_int_equal(ad_cs_feed(r.cs, "\n", 1), AD_EIO);
        done_result(&r);
    }
    result r = run_ex(OPENAI_TEXT, strlen(OPENAI_TEXT), NULL, RANDOM, 3, 2);
    assert_int_equal(r.feed_rc, AD_EIO);
    assert_string_equal(LOG(r), "T:Hello|T:!|");
    assert_string_equal(ad_cs_error(r.cs), "event 3: on_text callback failed: i/o error");
    done_result(&r);
}

static void null_callbacks(void **state)
{
    (void)state;
    ad_cs_callbacks none = {NULL, NULL, NULL};
    for (int pass = 0; pass < 2; pass++) {
        ad_cs *cs = ad_cs_new(NULL, pass ? &none : NULL, NULL);
        assert_int_equal(ad_cs_feed(cs, OPENAI_TOOLS, strlen(OPENAI_TOOLS)), AD_OK);
        assert_int_equal(ad_cs_finish(cs), AD_OK);
        assert_int_equal(ad_cs_result(cs)->ncalls, 2);
        ad_cs_free(cs);
    }
    ad_cs_free(NULL);
}

/* U+0000 in content is kept (use .len); text arrives as sent. */
static void nul_in_content(void **state)
{
    (void)state;
    result r = check(CONTENT("a\\u0000b") STOP, NULL, ALL_EOLS);
    assert_int_equal(r.finish_rc, AD_OK);
    assert_int_equal(T(&r)->text.len, 3);
    assert_memory_equal(T(&r)->text.ptr, "a\0b", 3);
    assert_string_equal(LOG(r), "T:a\\0b|");
    done_result(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(openai_text_stream),
        cmocka_unit_test(sse_framing_rules),
        cmocka_unit_test(sse_mixed_line_ends),
        cmocka_unit_test(sse_crlf_split_across_feeds),
        cmocka_unit_test(done_ends_stream),
        cmocka_unit_test(finish_reasons),
        cmocka_unit_test(only_choice_zero),
        cmocka_unit_test(openai_tool_calls),
        cmocka_unit_test(interleaved_tool_calls),
        cmocka_unit_test(tool_call_without_index),
        cmocka_unit_test(ollama_calls_without_index),
        cmocka_unit_test(same_index_different_ids),
        cmocka_unit_test(args_before_name_and_gaps),
        cmocka_unit_test(unstable_id_continues_call),
        cmocka_unit_test(unstable_id_repeated_name),
        cmocka_unit_test(id_reused_across_calls),
        cmocka_unit_test(same_index_whole_calls_no_ids),
        cmocka_unit_test(tool_call_index_range),
        cmocka_unit_test(too_many_tool_calls),
        cmocka_unit_test(vllm_whole_calls_object_args),
        cmocka_unit_test(content_null_absent_empty),
        cmocka_unit_test(llamacpp_stream),
        cmocka_unit_test(azure_filters),
        cmocka_unit_test(refusal_accumulates),
        cmocka_unit_test(upstream_errors),
        cmocka_unit_test(malformed_chunks),
        cmocka_unit_test(limits),
        cmocka_unit_test(completion_bodies),
        cmocka_unit_test(finish_rules),
        cmocka_unit_test(callback_failure_sticks),
        cmocka_unit_test(null_callbacks),
        cmocka_unit_test(nul_in_content),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
