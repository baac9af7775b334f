/*
 * prompt.h -- the chat-completions request for the next model call of a run.
 *
 * The prompt is rebuilt from the store before every call, so a run resumed
 * after tool outputs (or after a restart) sees exactly what is stored:
 *   system:    the run's instructions (additional_instructions already
 *              appended by the handler);
 *   history:   the thread's messages in order, oldest first, as user and
 *              assistant turns -- text, and images as image parts (image_url
 *              as given, image_file as a data: URL of the file's bytes) --
 *              with the tool calls earlier runs made before their answers
 *              (function calls with their outputs, built-in calls with what
 *              the model read), as OpenAI's model saw them; cut by the run's
 *              truncation_strategy (last_messages keeps the newest N
 *              messages, and an earlier run's calls only with the answer
 *              that followed them), then, oldest first, until the prompt
 *              fits its budget (below) -- a call and its output are dropped
 *              together;
 *   this run:  its steps in order: a message_creation step becomes the
 *              assistant's text, a tool_calls step with outputs becomes an
 *              assistant turn with tool_calls followed by one tool message
 *              per call;
 *   tools:     the run's function tools, with tool_choice,
 *              parallel_tool_calls, response_format, temperature, top_p and
 *              max_completion_tokens mapped to their chat-completions names;
 *              reasoning_effort, the run's (createRun) or else its
 *              assistant's, both kept in private extras rows (api/api.h),
 *              and none when neither has one.
 *
 * Budget. Tokens are counted with the model's tokenizer (run/tokenizer.h,
 * chat framing as OpenAI documents it, images as their vision price, tools
 * as their JSON). The prompt must fit the model's context window less room
 * for the answer, and -- when the run has max_prompt_tokens -- what is left
 * of that after the prompt tokens earlier calls of the run used (the limit
 * is over the whole run, as OpenAI's). Instructions, tools and this run's
 * own turns always stay, and so does the newest history message; older
 * history goes first. max_completion_tokens is also over the whole run: each
 * call may use what earlier calls left.
 */
#ifndef AD_PROMPT_H
#define AD_PROMPT_H

#include <jansson.h>
#include <stddef.h>

#include "run/backends.h"
#include "run/tokenizer.h"
#include "store/store.h"

typedef enum {
    AD_PROMPT_OK = 0,
    AD_PROMPT_ERROR,             /* the store failed; err says what */
    AD_PROMPT_PROMPT_BUDGET,     /* max_prompt_tokens cannot be kept: incomplete */
    AD_PROMPT_COMPLETION_BUDGET, /* max_completion_tokens already used up: incomplete */
    AD_PROMPT_TOO_LONG           /* does not fit the context window even truncated */
} ad_prompt_status;

typedef struct ad_prompt {
    json_t *body;         /* the request; owned by the caller (json_decref) */
    size_t prompt_tokens; /* our count of what the body sends */
    size_t dropped;       /* history messages left out */
} ad_prompt;

/* Builds the next call's request into *out (AD_PROMPT_OK), or says why not,
 * with a user-facing sentence in err. data_dir locates file bytes for
 * image_file parts; tok is the model's tokenizer. */
ad_prompt_status ad_prompt_build(ad_db *db, const char *data_dir, const char *project,
                                 const json_t *run, const ad_model *model, const ad_tokenizer *tok,
                                 ad_prompt *out, char *err, size_t errsize);

#endif
