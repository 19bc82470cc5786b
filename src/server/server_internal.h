/* server/server_internal — what the server's files share: the server struct and the
 * endpoint handlers. Not for use outside src/server. */
#ifndef HR_SERVER_INTERNAL_H
#define HR_SERVER_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>

#include "base/strbuf.h"
#include "server/metrics.h"
#include "server/server.h"

typedef struct hr_chat hr_chat;

struct hr_server {
    hr_server_config cfg;
    char host[256];
    char model_id[1024];
    char api_key[512];
    const hr_model *model;
    hr_engine *engine;
    hr_metrics *metrics;
    hr_chat *chat;
    struct MHD_Daemon *daemon;
    uint16_t port;
    pthread_mutex_t lock; /* guards engine (NULL once stopping), admitting and in_flight */
    int admitting;        /* requests between parsing and engine submission, for --max-queue */
    int in_flight;        /* requests begun and not yet completely answered */
    pthread_cond_t answered; /* signalled when in_flight drops to 0 */
};

/* Engine access that is safe while the server stops: after hr_server_stop begins,
 * submit fails with a sentence and cancel and stats do nothing. */
hr_status hr_server_submit(hr_server *s, const hr_request *r, uint64_t *id, hr_error *err);
void hr_server_cancel(hr_server *s, uint64_t id);
bool hr_server_engine_stats(hr_server *s, hr_engine_stats *out);

/* The endpoints with request bodies (server/openai.c). */
enum MHD_Result hr_api_chat_completions(hr_server *s, struct MHD_Connection *c, const char *body, size_t len);
enum MHD_Result hr_api_completions(hr_server *s, struct MHD_Connection *c, const char *body, size_t len);
enum MHD_Result hr_api_budget(hr_server *s, struct MHD_Connection *c, const char *body, size_t len);
enum MHD_Result hr_api_tokenize(hr_server *s, struct MHD_Connection *c, const char *body, size_t len);
enum MHD_Result hr_api_detokenize(hr_server *s, struct MHD_Connection *c, const char *body, size_t len);

/* Chat rendering (server/chat.c): the model's template, a named built-in, or a file. */
hr_status hr_chat_new(hr_chat **out, const hr_model *m, const char *name_or_file, hr_error *err);
void hr_chat_free(hr_chat *c);
/* Renders messages with the generation prompt added. */
hr_status hr_chat_render(hr_chat *c, const json_t *messages, hr_strbuf *out, hr_error *err);
const char *hr_chat_name(const hr_chat *c);

#endif
