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
 *              cut by the run's truncation_strategy (last_messages keeps the
 *              newest N);
 *   this run:  its steps in order: a message_creation step becomes the
 *              assistant's text, a tool_calls step with outputs becomes an
 *              assistant turn with tool_calls followed by one tool message
 *              per call;
 *   tools:     the run's function tools, with tool_choice,
 *              parallel_tool_calls, response_format, temperature, top_p and
 *              max_completion_tokens mapped to their chat-completions names.
 */
#ifndef AD_PROMPT_H
#define AD_PROMPT_H

#include <jansson.h>
#include <stddef.h>

#include "run/backends.h"
#include "store/store.h"

/* New reference, or NULL with a reason in err. data_dir locates file bytes
 * for image_file parts. */
json_t *ad_prompt_build(ad_db *db, const char *data_dir, const char *project, const json_t *run,
                        const ad_model *model, char *err, size_t errsize);

#endif
