/* vkllm-gtk: a small GTK 4 desktop application on vkllm's public C API.
 *
 *   vkllm-gtk [--prompt TEXT] [--n-predict N] [--temp T] [--trace] [MODEL.gguf]
 *
 * Open a GGUF model (the button, or MODEL on the command line), type a prompt and press
 * Generate (Ctrl+Return); the text streams into the window. Stop (Escape) interrupts the
 * model load, the prompt or the generation.
 *
 * Threads. The library's calls that take time (vkllm_model_load, vkllm_context_create,
 * vkllm_generate) run on one worker thread at a time, never on the GTK main thread, and no
 * GTK call is made on the worker. The worker talks to the UI with messages pushed onto one
 * queue (app.inbox) and drained on the main thread by an idle callback, so they arrive in the
 * order they were sent and the job's last message ("loaded", "generated") comes after all its
 * text. While a job runs, its model and context belong to the worker: the main thread does
 * not touch them until that last message, and the actions that would (Generate, Open) are
 * disabled. The Stop button sets an atomic flag that the library's abort callback, the load
 * progress callback and the text callback read on the worker.
 *
 * --trace prints one line per event to stdout for scripts/gtk_screenshot.sh (ready,
 * generate, first-text, done, the text area's place in the window); the text itself appears
 * only in the window. */
#include <gtk/gtk.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vkllm.h"

#define DEFAULT_PROMPT "Once upon a time"
#define DEFAULT_N_PREDICT 256
#define DEFAULT_TEMP 0.8

typedef enum job_kind { JOB_NONE, JOB_LOAD, JOB_GENERATE } job_kind;

typedef struct app app;

/* ------------------------------------------------- messages: worker -> UI ---- */

typedef enum msg_kind {
    MSG_PROGRESS,  /* fraction, text: the progress bar */
    MSG_TEXT,      /* text: a piece of generated text; n_tokens generated so far */
    MSG_LOADED,    /* the load job's end: status, error; model, ctx, info, text (file name) on success */
    MSG_GENERATED, /* the generate job's end: status, error, timings */
} msg_kind;

typedef struct msg {
    msg_kind kind;
    double fraction;
    char *text;
    uint32_t n_tokens;
    vkllm_status status;
    char *error; /* vkllm_last_error() of the worker thread, copied there */
    vkllm_model *model;
    vkllm_context *ctx;
    vkllm_model_info info;
    vkllm_timings timings;
} msg;

/* One job on the worker thread: everything it needs is in here, owned by it. */
typedef struct job {
    app *app;
    job_kind kind;
    /* JOB_LOAD */
    char *path;
    vkllm_model *old_model; /* the previous model and context, freed by the job first */
    vkllm_context *old_ctx;
    float last_progress;
    /* JOB_GENERATE */
    vkllm_context *ctx;
    char *prompt;
    int32_t n_predict;
    float temp;
    uint32_t n_tokens;
} job;

struct app {
    GtkApplication *gapp;
    GtkWindow *window;
    GtkWidget *model_label, *progress, *prompt_view, *output_view, *output_scroller;
    GtkWidget *status_label, *n_predict_spin, *temp_spin;
    GtkTextBuffer *output;
    GtkTextMark *output_end;
    GSimpleAction *act_open, *act_generate, *act_stop;

    /* command line */
    const char *initial_model;
    const char *initial_prompt;
    int n_predict;
    double temp;
    gboolean trace;

    /* main thread only */
    vkllm_model *model; /* NULL while a job owns it */
    vkllm_context *ctx;
    GThread *worker;
    job_kind busy;
    gboolean closing; /* the window closes once the job has finished */
    gboolean got_text;
    int32_t gen_n_predict; /* of the running generation */

    /* shared with the worker */
    GAsyncQueue *inbox;
    gint stop; /* g_atomic_int: nonzero asks the running job to stop */
};

static void msg_free(msg *m) {
    g_free(m->text);
    g_free(m->error);
    g_free(m);
}

static gboolean drain_inbox(gpointer data);

/* Worker side: hands m to the main thread. */
static void post(app *a, msg *m) {
    g_async_queue_push(a->inbox, m);
    g_idle_add(drain_inbox, a);
}

static void post_progress(app *a, double fraction, char *text /* taken */) {
    msg *m = g_new0(msg, 1);
    m->kind = MSG_PROGRESS;
    m->fraction = fraction;
    m->text = text;
    post(a, m);
}

static int stop_requested(app *a) { return g_atomic_int_get(&a->stop) != 0; }

static void trace(app *a, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void trace(app *a, const char *fmt, ...) {
    if (!a->trace) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("vkllm-gtk: ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

/* ------------------------------------------------------- the worker thread ---- */

/* vkllm_model_params.progress: on the loading thread. */
static int on_load_progress(float progress, void *user) {
    job *j = user;
    if (progress >= 1.0f || progress - j->last_progress >= 0.01f) {
        j->last_progress = progress;
        post_progress(j->app, progress, g_strdup_printf("Loading… %.0f %%", progress * 100.0));
    }
    return stop_requested(j->app);
}

/* The context's abort callback: asked between prompt chunks and before every token. */
static int on_abort(void *user) { return stop_requested(user); }

/* The context's prompt progress callback. */
static void on_prompt_progress(uint32_t done, uint32_t total, void *user) {
    post_progress(user, total ? (double)done / total : 1.0,
                  g_strdup_printf("Prompt: %u of %u tokens", done, total));
}

static void on_token(int32_t token, void *user) {
    job *j = user;
    j->n_tokens++;
}

static int on_text(const char *text, size_t len, int32_t token, void *user) {
    job *j = user;
    msg *m = g_new0(msg, 1);
    m->kind = MSG_TEXT;
    /* Pieces never split a UTF-8 character, but a model may still emit bytes that are not
     * UTF-8; GtkTextBuffer accepts valid UTF-8 only. */
    m->text = g_utf8_make_valid(text, (gssize)len);
    m->n_tokens = j->n_tokens;
    post(j->app, m);
    return stop_requested(j->app);
}

static gpointer load_worker(gpointer data) {
    job *j = data;
    msg *m = g_new0(msg, 1);
    m->kind = MSG_LOADED;
    m->text = g_path_get_basename(j->path);

    vkllm_context_free(j->old_ctx);
    vkllm_model_free(j->old_model);

    vkllm_model_params mp;
    vkllm_model_params_init(&mp); /* the default device (n_devices 0) */
    mp.progress = on_load_progress;
    mp.progress_user = j;
    vkllm_model *model = NULL;
    vkllm_context *ctx = NULL;
    vkllm_status st = vkllm_model_load(j->path, &mp, &model);
    if (st == VKLLM_OK) {
        post_progress(j->app, 1.0, g_strdup("Preparing a context…"));
        vkllm_context_params cp;
        vkllm_context_params_init(&cp); /* the same defaults as mp.ctx, which the plan fits */
        st = vkllm_context_create(model, &cp, &ctx);
    }
    if (st == VKLLM_OK) st = vkllm_context_set_abort_callback(ctx, on_abort, j->app);
    if (st == VKLLM_OK) st = vkllm_context_set_progress_callback(ctx, on_prompt_progress, j->app);
    if (st == VKLLM_OK) st = vkllm_model_get_info(model, &m->info);
    if (st != VKLLM_OK)
        m->error = g_strdup(vkllm_last_error()); /* thread-local: copy it here */
    else if (stop_requested(j->app))
        st = VKLLM_ERR_CANCELLED; /* Stop came after the last progress call */

    m->status = st;
    if (st == VKLLM_OK) {
        m->model = model;
        m->ctx = ctx;
    } else {
        vkllm_context_free(ctx);
        vkllm_model_free(model);
    }
    post(j->app, m); /* the last message of the job; finish_job frees j */
    return j;
}

static gpointer generate_worker(gpointer data) {
    job *j = data;
    msg *m = g_new0(msg, 1);
    m->kind = MSG_GENERATED;

    vkllm_context_reset(j->ctx); /* every Generate starts a new text from its prompt */
    vkllm_generate_params gp;
    vkllm_generate_params_init(&gp);
    gp.prompt = j->prompt;
    gp.n_predict = j->n_predict;
    gp.sampling.temp = j->temp;
    gp.on_text = on_text;
    gp.on_token = on_token;
    gp.user = j;
    m->status = vkllm_generate(j->ctx, &gp, &m->timings);
    if (m->status != VKLLM_OK) m->error = g_strdup(vkllm_last_error());
    post(j->app, m);
    return j;
}

static void job_free(job *j) {
    g_free(j->path);
    g_free(j->prompt);
    g_free(j);
}

/* ------------------------------------------------------------ the UI thread ---- */

static void update_actions(app *a) {
    g_simple_action_set_enabled(a->act_open, a->busy == JOB_NONE && !a->closing);
    g_simple_action_set_enabled(a->act_generate, a->busy == JOB_NONE && a->ctx != NULL && !a->closing);
    g_simple_action_set_enabled(a->act_stop, a->busy != JOB_NONE);
}

static void set_status(app *a, const char *text) { gtk_label_set_text(GTK_LABEL(a->status_label), text); }

static void start_job(app *a, job *j, GThreadFunc fn) {
    g_atomic_int_set(&a->stop, 0);
    a->busy = j->kind;
    a->worker = g_thread_new(j->kind == JOB_LOAD ? "vkllm-load" : "vkllm-generate", fn, j);
    update_actions(a);
}

/* The job's last message has arrived: its thread is returning. */
static void finish_job(app *a) {
    job *j = g_thread_join(a->worker);
    job_free(j);
    a->worker = NULL;
    a->busy = JOB_NONE;
    update_actions(a);
}

static void release_model(app *a) {
    vkllm_context_free(a->ctx);
    vkllm_model_free(a->model);
    a->ctx = NULL;
    a->model = NULL;
}

static void on_dialog_response(GtkDialog *dialog, int response, gpointer user) {
    gtk_window_destroy(GTK_WINDOW(dialog));
}

static void show_error(app *a, const char *what, vkllm_status st, const char *detail) {
    trace(a, "error %s: %s: %s", what, vkllm_status_string(st), detail ? detail : "");
    GtkWidget *d = gtk_message_dialog_new(a->window, GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                          GTK_MESSAGE_ERROR, GTK_BUTTONS_CLOSE, "%s", what);
    gtk_message_dialog_format_secondary_text(GTK_MESSAGE_DIALOG(d), "%s\n\n%s", vkllm_status_string(st),
                                             detail && *detail ? detail : "(no details)");
    g_signal_connect(d, "response", G_CALLBACK(on_dialog_response), NULL);
    gtk_window_present(GTK_WINDOW(d));
}

/* Where the generated text shows, in the window's X surface (for --trace). */
static void trace_output_area(app *a) {
    graphene_rect_t r;
    double sx = 0, sy = 0;
    if (!a->trace || !gtk_widget_compute_bounds(a->output_scroller, GTK_WIDGET(a->window), &r)) return;
    gtk_native_get_surface_transform(GTK_NATIVE(a->window), &sx, &sy);
    trace(a, "output-area %d %d %d %d", (int)(r.origin.x + sx), (int)(r.origin.y + sy), (int)r.size.width,
          (int)r.size.height);
}

static void close_now(app *a) {
    release_model(a);
    gtk_window_destroy(a->window);
}

static void handle_loaded(app *a, msg *m) {
    finish_job(a);
    if (a->closing) {
        if (m->status == VKLLM_OK) {
            vkllm_context_free(m->ctx);
            vkllm_model_free(m->model);
        }
        close_now(a);
        return;
    }
    if (m->status != VKLLM_OK) {
        gtk_label_set_text(GTK_LABEL(a->model_label), "No model");
        gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(a->progress), 0.0);
        gtk_progress_bar_set_text(GTK_PROGRESS_BAR(a->progress), "");
        if (m->status == VKLLM_ERR_CANCELLED) {
            set_status(a, "Loading stopped.");
            trace(a, "load-cancelled");
        } else {
            set_status(a, "The model could not be loaded.");
            show_error(a, "The model could not be loaded", m->status, m->error);
        }
        return;
    }
    a->model = m->model;
    a->ctx = m->ctx;
    update_actions(a);

    const vkllm_model_info *in = &m->info;
    char *label = g_strdup_printf("%s — %s %s, %.1fM parameters, %u layers, context %u — on %s", m->text, in->arch,
                                  in->type_name, (double)in->n_params / 1e6, in->n_layer, vkllm_context_size(a->ctx),
                                  in->device);
    gtk_label_set_text(GTK_LABEL(a->model_label), label);
    g_free(label);
    char *title = g_strdup_printf("vkllm — %s", m->text);
    gtk_window_set_title(a->window, title);
    g_free(title);
    char *status = g_strdup_printf("Loaded in %.0f ms. Type a prompt and press Generate (Ctrl+Return).", in->load_ms);
    set_status(a, status);
    g_free(status);
    gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(a->progress), 1.0);
    gtk_progress_bar_set_text(GTK_PROGRESS_BAR(a->progress), "Ready");
    gtk_widget_grab_focus(a->prompt_view);
    trace(a, "ready %s", m->text);
    trace_output_area(a);
}

static void handle_generated(app *a, msg *m) {
    finish_job(a);
    if (a->closing) {
        close_now(a);
        return;
    }
    const vkllm_timings *t = &m->timings;
    gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(a->progress), 1.0);
    if (m->status == VKLLM_ERR_CANCELLED) {
        gtk_progress_bar_set_text(GTK_PROGRESS_BAR(a->progress), "Stopped");
        set_status(a, "Stopped while reading the prompt.");
        trace(a, "done stopped-in-prompt");
        return;
    }
    if (m->status != VKLLM_OK) {
        gtk_progress_bar_set_text(GTK_PROGRESS_BAR(a->progress), "Failed");
        set_status(a, "Generation failed.");
        show_error(a, "Generation failed", m->status, m->error);
        return;
    }
    static const char *const reasons[] = {"end of text", "token limit", "stop string", "stopped", "context full"};
    const char *reason = (unsigned)t->stop < G_N_ELEMENTS(reasons) ? reasons[t->stop] : "?";
    gtk_progress_bar_set_text(GTK_PROGRESS_BAR(a->progress), t->stop == VKLLM_STOP_CALLBACK ? "Stopped" : "Done");
    char *status = g_strdup_printf("%s: prompt %u tokens in %.0f ms, %u tokens generated at %.1f tokens/s.", reason,
                                   t->n_prompt, t->prompt_ms, t->n_gen,
                                   t->gen_ms > 0 ? t->n_gen * 1000.0 / t->gen_ms : 0.0);
    set_status(a, status);
    g_free(status);
    trace(a, "done stop=%s n_gen=%u", reason, t->n_gen);
    trace_output_area(a);
}

static void handle_text(app *a, msg *m) {
    GtkTextIter end;
    gtk_text_buffer_get_end_iter(a->output, &end);
    gtk_text_buffer_insert(a->output, &end, m->text, -1);
    gtk_text_view_scroll_mark_onscreen(GTK_TEXT_VIEW(a->output_view), a->output_end);
    gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(a->progress), MIN(1.0, (double)m->n_tokens / a->gen_n_predict));
    char *label = g_strdup_printf("%u tokens", m->n_tokens);
    gtk_progress_bar_set_text(GTK_PROGRESS_BAR(a->progress), label);
    g_free(label);
    if (!a->got_text) {
        a->got_text = TRUE;
        if (!a->closing) set_status(a, "Generating… (Stop or Escape to interrupt)");
        trace(a, "first-text");
    }
}

static void handle(app *a, msg *m) {
    switch (m->kind) {
    case MSG_PROGRESS:
        gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(a->progress), CLAMP(m->fraction, 0.0, 1.0));
        gtk_progress_bar_set_text(GTK_PROGRESS_BAR(a->progress), m->text);
        break;
    case MSG_TEXT: handle_text(a, m); break;
    case MSG_LOADED: handle_loaded(a, m); break;
    case MSG_GENERATED: handle_generated(a, m); break;
    }
}

static gboolean drain_inbox(gpointer data) {
    app *a = data;
    msg *m;
    while ((m = g_async_queue_try_pop(a->inbox)) != NULL) {
        handle(a, m);
        msg_free(m);
    }
    return G_SOURCE_REMOVE;
}

static void start_load(app *a, const char *path) {
    if (a->busy != JOB_NONE || a->closing) return;
    job *j = g_new0(job, 1);
    j->app = a;
    j->kind = JOB_LOAD;
    j->path = g_strdup(path);
    j->old_model = a->model; /* the job frees the previous model off the UI thread */
    j->old_ctx = a->ctx;
    a->model = NULL;
    a->ctx = NULL;

    char *base = g_path_get_basename(path);
    char *label = g_strdup_printf("Loading %s…", base);
    gtk_label_set_text(GTK_LABEL(a->model_label), label);
    g_free(label);
    g_free(base);
    gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(a->progress), 0.0);
    gtk_progress_bar_set_text(GTK_PROGRESS_BAR(a->progress), "Loading…");
    set_status(a, "Loading the model (Stop or Escape to interrupt).");
    start_job(a, j, load_worker);
}

/* ----------------------------------------------------------------- actions ---- */

static void on_file_chosen(GtkNativeDialog *dialog, int response, gpointer user) {
    app *a = user;
    if (response == GTK_RESPONSE_ACCEPT) {
        GFile *file = gtk_file_chooser_get_file(GTK_FILE_CHOOSER(dialog));
        char *path = file ? g_file_get_path(file) : NULL;
        if (path) start_load(a, path);
        g_free(path);
        if (file) g_object_unref(file);
    }
    g_object_unref(dialog);
}

static void act_open(GSimpleAction *action, GVariant *param, gpointer user) {
    app *a = user;
    GtkFileChooserNative *fc = gtk_file_chooser_native_new("Open a GGUF model", a->window, GTK_FILE_CHOOSER_ACTION_OPEN,
                                                           "_Open", "_Cancel");
    GtkFileFilter *gguf = gtk_file_filter_new();
    gtk_file_filter_set_name(gguf, "GGUF models");
    gtk_file_filter_add_pattern(gguf, "*.gguf");
    gtk_file_chooser_add_filter(GTK_FILE_CHOOSER(fc), gguf);
    g_object_unref(gguf);
    GtkFileFilter *all = gtk_file_filter_new();
    gtk_file_filter_set_name(all, "All files");
    gtk_file_filter_add_pattern(all, "*");
    gtk_file_chooser_add_filter(GTK_FILE_CHOOSER(fc), all);
    g_object_unref(all);
    gtk_native_dialog_set_modal(GTK_NATIVE_DIALOG(fc), TRUE);
    g_signal_connect(fc, "response", G_CALLBACK(on_file_chosen), a);
    gtk_native_dialog_show(GTK_NATIVE_DIALOG(fc));
}

static void act_generate(GSimpleAction *action, GVariant *param, gpointer user) {
    app *a = user;
    if (a->busy != JOB_NONE || a->ctx == NULL || a->closing) return;

    GtkTextBuffer *pb = gtk_text_view_get_buffer(GTK_TEXT_VIEW(a->prompt_view));
    GtkTextIter start, end;
    gtk_text_buffer_get_bounds(pb, &start, &end);
    job *j = g_new0(job, 1);
    j->app = a;
    j->kind = JOB_GENERATE;
    j->prompt = gtk_text_buffer_get_text(pb, &start, &end, FALSE);
    j->ctx = a->ctx; /* the worker's until MSG_GENERATED */
    j->n_predict = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(a->n_predict_spin));
    j->temp = (float)gtk_spin_button_get_value(GTK_SPIN_BUTTON(a->temp_spin));

    /* The output shows the prompt (bold), then the continuation as it streams in. */
    gtk_text_buffer_set_text(a->output, "", 0);
    gtk_text_buffer_get_end_iter(a->output, &end);
    gtk_text_buffer_insert_with_tags_by_name(a->output, &end, j->prompt, -1, "prompt", NULL);
    a->got_text = FALSE;
    a->gen_n_predict = j->n_predict;
    gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(a->progress), 0.0);
    gtk_progress_bar_set_text(GTK_PROGRESS_BAR(a->progress), "Prompt…");
    set_status(a, "Reading the prompt (Stop or Escape to interrupt).");
    trace(a, "generate prompt=\"%s\" n_predict=%d", j->prompt, (int)j->n_predict);
    start_job(a, j, generate_worker);
}

static void act_stop(GSimpleAction *action, GVariant *param, gpointer user) {
    app *a = user;
    if (a->busy == JOB_NONE) return;
    g_atomic_int_set(&a->stop, 1);
    set_status(a, "Stopping…");
}

static void act_close(GSimpleAction *action, GVariant *param, gpointer user) {
    app *a = user;
    gtk_window_close(a->window);
}

/* The window's close button, Ctrl+Q or Ctrl+W: a running job is stopped first and the
 * window goes when its last message arrives (the worker never outlives the model). */
static gboolean on_close_request(GtkWindow *window, gpointer user) {
    app *a = user;
    if (a->busy != JOB_NONE) {
        a->closing = TRUE;
        g_atomic_int_set(&a->stop, 1);
        gtk_widget_set_sensitive(GTK_WIDGET(window), FALSE);
        set_status(a, "Stopping before closing…");
        update_actions(a);
        return TRUE; /* keep the window for now */
    }
    release_model(a);
    return FALSE;
}

/* --------------------------------------------------------------- the window ---- */

static GtkWidget *scrolled(GtkWidget *child, int min_height) {
    GtkWidget *s = gtk_scrolled_window_new();
    gtk_scrolled_window_set_child(GTK_SCROLLED_WINDOW(s), child);
    gtk_scrolled_window_set_min_content_height(GTK_SCROLLED_WINDOW(s), min_height);
    gtk_scrolled_window_set_has_frame(GTK_SCROLLED_WINDOW(s), TRUE);
    return s;
}

static GtkWidget *text_view(void) {
    GtkWidget *v = gtk_text_view_new();
    gtk_text_view_set_wrap_mode(GTK_TEXT_VIEW(v), GTK_WRAP_WORD_CHAR);
    gtk_text_view_set_left_margin(GTK_TEXT_VIEW(v), 8);
    gtk_text_view_set_right_margin(GTK_TEXT_VIEW(v), 8);
    gtk_text_view_set_top_margin(GTK_TEXT_VIEW(v), 6);
    gtk_text_view_set_bottom_margin(GTK_TEXT_VIEW(v), 6);
    return v;
}

static GtkWidget *button(const char *label, const char *action, const char *tooltip, const char *css_class) {
    GtkWidget *b = gtk_button_new_with_mnemonic(label);
    gtk_actionable_set_action_name(GTK_ACTIONABLE(b), action);
    gtk_widget_set_tooltip_text(b, tooltip);
    if (css_class) gtk_widget_add_css_class(b, css_class);
    return b;
}

static GSimpleAction *add_action(app *a, const char *name, GCallback fn) {
    GSimpleAction *act = g_simple_action_new(name, NULL);
    g_signal_connect(act, "activate", fn, a);
    g_action_map_add_action(G_ACTION_MAP(a->window), G_ACTION(act));
    g_object_unref(act); /* the window holds it */
    return act;
}

static void set_accels(app *a, const char *action, const char *first, const char *second) {
    const char *accels[] = {first, second, NULL};
    gtk_application_set_accels_for_action(a->gapp, action, accels);
}

static void build_window(app *a) {
    a->window = GTK_WINDOW(gtk_application_window_new(a->gapp));
    gtk_window_set_title(a->window, "vkllm");
    gtk_window_set_default_size(a->window, 760, 560);
    g_signal_connect(a->window, "close-request", G_CALLBACK(on_close_request), a);

    a->act_open = add_action(a, "open", G_CALLBACK(act_open));
    a->act_generate = add_action(a, "generate", G_CALLBACK(act_generate));
    a->act_stop = add_action(a, "stop", G_CALLBACK(act_stop));
    add_action(a, "close", G_CALLBACK(act_close));
    set_accels(a, "win.open", "<Control>o", NULL);
    set_accels(a, "win.generate", "<Control>Return", "<Control>KP_Enter");
    set_accels(a, "win.stop", "Escape", NULL);
    set_accels(a, "win.close", "<Control>q", "<Control>w");

    GtkWidget *box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 8);
    gtk_widget_set_margin_start(box, 12);
    gtk_widget_set_margin_end(box, 12);
    gtk_widget_set_margin_top(box, 12);
    gtk_widget_set_margin_bottom(box, 12);
    gtk_window_set_child(a->window, box);

    /* model: [Open model…] name and shape */
    GtkWidget *row = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 8);
    gtk_box_append(GTK_BOX(row), button("_Open model…", "win.open", "Choose a GGUF model file (Ctrl+O)", NULL));
    a->model_label = gtk_label_new("No model");
    gtk_label_set_xalign(GTK_LABEL(a->model_label), 0.0f);
    gtk_label_set_ellipsize(GTK_LABEL(a->model_label), PANGO_ELLIPSIZE_MIDDLE);
    gtk_widget_set_hexpand(a->model_label, TRUE);
    gtk_box_append(GTK_BOX(row), a->model_label);
    gtk_box_append(GTK_BOX(box), row);

    a->progress = gtk_progress_bar_new();
    gtk_progress_bar_set_show_text(GTK_PROGRESS_BAR(a->progress), TRUE);
    gtk_progress_bar_set_text(GTK_PROGRESS_BAR(a->progress), "");
    gtk_box_append(GTK_BOX(box), a->progress);

    /* prompt */
    GtkWidget *label = gtk_label_new("Prompt");
    gtk_label_set_xalign(GTK_LABEL(label), 0.0f);
    gtk_widget_add_css_class(label, "heading");
    gtk_box_append(GTK_BOX(box), label);
    a->prompt_view = text_view();
    gtk_text_buffer_set_text(gtk_text_view_get_buffer(GTK_TEXT_VIEW(a->prompt_view)), a->initial_prompt, -1);
    gtk_box_append(GTK_BOX(box), scrolled(a->prompt_view, 64));

    /* [Generate] [Stop]   Max tokens [256]  Temperature [0.8] */
    row = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 8);
    gtk_box_append(GTK_BOX(row), button("_Generate", "win.generate", "Generate a continuation of the prompt (Ctrl+Return)",
                                        "suggested-action"));
    gtk_box_append(GTK_BOX(row), button("_Stop", "win.stop", "Stop loading, reading the prompt or generating (Escape)",
                                        "destructive-action"));
    GtkWidget *spacer = gtk_label_new(NULL);
    gtk_widget_set_hexpand(spacer, TRUE);
    gtk_box_append(GTK_BOX(row), spacer);
    gtk_box_append(GTK_BOX(row), gtk_label_new("Max tokens"));
    a->n_predict_spin = gtk_spin_button_new_with_range(1, 8192, 16);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(a->n_predict_spin), a->n_predict);
    gtk_box_append(GTK_BOX(row), a->n_predict_spin);
    gtk_box_append(GTK_BOX(row), gtk_label_new("Temperature"));
    a->temp_spin = gtk_spin_button_new_with_range(0.0, 2.0, 0.1);
    gtk_spin_button_set_digits(GTK_SPIN_BUTTON(a->temp_spin), 2);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(a->temp_spin), a->temp);
    gtk_widget_set_tooltip_text(a->temp_spin, "0: greedy");
    gtk_box_append(GTK_BOX(row), a->temp_spin);
    gtk_box_append(GTK_BOX(box), row);

    /* output */
    a->output_view = text_view();
    gtk_text_view_set_editable(GTK_TEXT_VIEW(a->output_view), FALSE);
    gtk_text_view_set_cursor_visible(GTK_TEXT_VIEW(a->output_view), FALSE);
    a->output = gtk_text_view_get_buffer(GTK_TEXT_VIEW(a->output_view));
    gtk_text_buffer_create_tag(a->output, "prompt", "weight", PANGO_WEIGHT_BOLD, NULL);
    GtkTextIter end;
    gtk_text_buffer_get_end_iter(a->output, &end);
    a->output_end = gtk_text_buffer_create_mark(a->output, "end", &end, FALSE);
    a->output_scroller = scrolled(a->output_view, 200);
    gtk_widget_set_vexpand(a->output_scroller, TRUE);
    gtk_box_append(GTK_BOX(box), a->output_scroller);

    char *status = g_strdup_printf("vkllm %s. Open a GGUF model to start.", vkllm_version());
    a->status_label = gtk_label_new(status);
    g_free(status);
    gtk_label_set_xalign(GTK_LABEL(a->status_label), 0.0f);
    gtk_label_set_ellipsize(GTK_LABEL(a->status_label), PANGO_ELLIPSIZE_END);
    gtk_widget_add_css_class(a->status_label, "dim-label");
    gtk_box_append(GTK_BOX(box), a->status_label);

    update_actions(a);
}

static void on_activate(GtkApplication *gapp, gpointer user) {
    app *a = user;
    if (a->window) {
        gtk_window_present(a->window);
        return;
    }
    build_window(a);
    gtk_window_present(a->window);
    gtk_widget_grab_focus(a->prompt_view);
    if (a->initial_model) start_load(a, a->initial_model);
}

int main(int argc, char **argv) {
    static app a; /* outlives the main loop and every idle callback */
    a.n_predict = DEFAULT_N_PREDICT;
    a.temp = DEFAULT_TEMP;
    char *prompt = NULL;
    GOptionEntry entries[] = {
        {"prompt", 'p', 0, G_OPTION_ARG_STRING, &prompt, "Text the prompt box starts with", "TEXT"},
        {"n-predict", 'n', 0, G_OPTION_ARG_INT, &a.n_predict, "Tokens to generate at most (default 256)", "N"},
        {"temp", 0, 0, G_OPTION_ARG_DOUBLE, &a.temp, "Sampling temperature, 0 = greedy (default 0.8)", "T"},
        {"trace", 0, 0, G_OPTION_ARG_NONE, &a.trace, "Print a line per event on stdout (for tests)", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    GOptionContext *oc = g_option_context_new("[MODEL.gguf] - generate text with vkllm");
    g_option_context_add_main_entries(oc, entries, NULL);
    GError *err = NULL;
    if (!g_option_context_parse(oc, &argc, &argv, &err)) {
        fprintf(stderr, "vkllm-gtk: %s\n", err->message);
        g_error_free(err);
        g_option_context_free(oc);
        return 2;
    }
    g_option_context_free(oc);
    if (argc > 2) {
        fprintf(stderr, "vkllm-gtk: one model file at most\n");
        return 2;
    }
    a.n_predict = CLAMP(a.n_predict, 1, 8192);
    a.temp = CLAMP(a.temp, 0.0, 2.0);
    a.initial_model = argc == 2 ? argv[1] : NULL;
    a.initial_prompt = prompt ? prompt : DEFAULT_PROMPT;
    a.inbox = g_async_queue_new();

    /* No application id: no D-Bus name to own, so it runs where no session bus is. */
    a.gapp = gtk_application_new(NULL, G_APPLICATION_NON_UNIQUE);
    g_signal_connect(a.gapp, "activate", G_CALLBACK(on_activate), &a);
    char *run_argv[] = {argv[0], NULL};
    int status = g_application_run(G_APPLICATION(a.gapp), 1, run_argv);
    g_object_unref(a.gapp);

    /* The window closes only when no job runs; drop messages nobody will handle. */
    msg *m;
    while ((m = g_async_queue_try_pop(a.inbox)) != NULL) msg_free(m);
    g_async_queue_unref(a.inbox);
    g_free(prompt);
    return status;
}
