/* vkllm-gtk-shot: turns an X server's frame buffer into a PNG and checks that text shows.
 *
 *   vkllm-gtk-shot SCREEN.xwd OUT.png [--crop X Y W H] [--text-area X Y W H]
 *
 * SCREEN.xwd is an XWD image: the file Xvfb keeps its screen in with -fbdir DIR
 * (DIR/Xvfb_screen0), or what `xwd -root` writes. OUT.png gets the screen, or the --crop
 * rectangle of it. With --text-area the rectangle (screen coordinates) must look like text:
 * several colours, and enough "ink" (pixels far from its most common colour, the background)
 * spread over enough rows in at least three lines (runs of rows with ink between blank
 * rows). Prints what it measured; exit status 0 when the checks pass, 1
 * when they fail, 2 when the image cannot be read or written. */
#include <gdk-pixbuf/gdk-pixbuf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XWD_HEADER_WORDS 25
#define XWD_COLOR_BYTES 12

/* What counts as text in --text-area. */
#define MIN_COLOURS 8
#define MIN_INK_PERMILLE 5 /* 0.5 % of the area */
#define MIN_INK_ROWS 8
#define MIN_LINES 3 /* runs of rows with ink: one more line than a one-line prompt shows */
#define INK_DISTANCE 96 /* |dr| + |dg| + |db| from the background */

typedef struct rect {
    int x, y, w, h;
} rect;

static uint32_t be32(const guchar *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The position of the lowest set bit of mask and its width, to extract a channel. */
static void mask_shift(uint32_t mask, int *shift, int *bits) {
    *shift = 0;
    *bits = 0;
    if (!mask) return;
    while (!(mask & 1u)) {
        mask >>= 1;
        (*shift)++;
    }
    while (mask & 1u) {
        mask >>= 1;
        (*bits)++;
    }
}

static guchar channel(uint32_t pixel, int shift, int bits) {
    if (bits == 0) return 0;
    uint32_t v = (pixel >> shift) & ((1u << bits) - 1);
    return (guchar)(bits >= 8 ? v >> (bits - 8) : v * 255 / ((1u << bits) - 1));
}

/* A TrueColor ZPixmap XWD image of 16, 24 or 32 bits per pixel, as an RGB pixbuf. */
static GdkPixbuf *load_xwd(const char *path, GError **err) {
    gchar *data = NULL;
    gsize size = 0;
    if (!g_file_get_contents(path, &data, &size, err)) return NULL;
    const guchar *d = (const guchar *)data;
    uint32_t h[XWD_HEADER_WORDS];
    if (size < sizeof h) goto bad;
    for (int i = 0; i < XWD_HEADER_WORDS; i++) h[i] = be32(d + 4 * i);
    uint32_t header_size = h[0], version = h[1], format = h[2], width = h[4], height = h[5];
    uint32_t byte_order = h[7], bpp = h[11], stride = h[12], visual = h[13], ncolors = h[19];
    uint32_t masks[3] = {h[14], h[15], h[16]};
    if (version != 7 || format != 2 /* ZPixmap */ || (visual != 4 && visual != 5) /* True/DirectColor */ ||
        (bpp != 16 && bpp != 24 && bpp != 32) || width == 0 || height == 0 || width > 16384 || height > 16384 ||
        stride < width * (bpp / 8)) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "%s: not a TrueColor ZPixmap XWD image of 16/24/32 bits per pixel", path);
        g_free(data);
        return NULL;
    }
    uint64_t offset = (uint64_t)header_size + (uint64_t)ncolors * XWD_COLOR_BYTES;
    if (offset + (uint64_t)stride * height > size) goto bad;

    int shift[3], bits[3];
    for (int c = 0; c < 3; c++) mask_shift(masks[c], &shift[c], &bits[c]);
    GdkPixbuf *pb = gdk_pixbuf_new(GDK_COLORSPACE_RGB, FALSE, 8, (int)width, (int)height);
    guchar *out = gdk_pixbuf_get_pixels(pb);
    int out_stride = gdk_pixbuf_get_rowstride(pb);
    uint32_t bytes = bpp / 8;
    for (uint32_t y = 0; y < height; y++) {
        const guchar *row = d + offset + (uint64_t)y * stride;
        guchar *o = out + (size_t)y * out_stride;
        for (uint32_t x = 0; x < width; x++) {
            const guchar *p = row + x * bytes;
            uint32_t pixel = 0;
            for (uint32_t b = 0; b < bytes; b++)
                pixel |= (uint32_t)p[b] << (byte_order == 0 /* LSBFirst */ ? 8 * b : 8 * (bytes - 1 - b));
            for (int c = 0; c < 3; c++) o[3 * x + c] = channel(pixel, shift[c], bits[c]);
        }
    }
    g_free(data);
    return pb;
bad:
    g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: truncated XWD image", path);
    g_free(data);
    return NULL;
}

static int clip(rect *r, int width, int height) {
    int x1 = MIN(r->x + r->w, width), y1 = MIN(r->y + r->h, height);
    r->x = MAX(r->x, 0);
    r->y = MAX(r->y, 0);
    r->w = x1 - r->x;
    r->h = y1 - r->y;
    return r->w > 0 && r->h > 0;
}

static uint32_t rgb_at(const guchar *pixels, int stride, int x, int y) {
    const guchar *p = pixels + (size_t)y * stride + 3 * (size_t)x;
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

/* The checks of --text-area; prints what it found. */
static int check_text(GdkPixbuf *pb, rect r) {
    const guchar *px = gdk_pixbuf_read_pixels(pb);
    int stride = gdk_pixbuf_get_rowstride(pb);
    GHashTable *counts = g_hash_table_new(g_direct_hash, g_direct_equal);
    uint32_t background = 0, best = 0;
    for (int y = r.y; y < r.y + r.h; y++)
        for (int x = r.x; x < r.x + r.w; x++) {
            gpointer key = GUINT_TO_POINTER(rgb_at(px, stride, x, y) + 1); /* 0 is NULL */
            uint32_t n = GPOINTER_TO_UINT(g_hash_table_lookup(counts, key)) + 1;
            g_hash_table_insert(counts, key, GUINT_TO_POINTER(n));
            if (n > best) {
                best = n;
                background = GPOINTER_TO_UINT(key) - 1;
            }
        }
    unsigned colours = g_hash_table_size(counts);
    g_hash_table_destroy(counts);

    uint64_t ink = 0;
    int ink_rows = 0, lines = 0, previous = 0;
    for (int y = r.y; y < r.y + r.h; y++) {
        int row_ink = 0;
        for (int x = r.x; x < r.x + r.w; x++) {
            uint32_t c = rgb_at(px, stride, x, y);
            int dist = abs((int)(c >> 16) - (int)(background >> 16)) +
                       abs((int)(c >> 8 & 0xff) - (int)(background >> 8 & 0xff)) +
                       abs((int)(c & 0xff) - (int)(background & 0xff));
            if (dist > INK_DISTANCE) row_ink++;
        }
        ink += (uint64_t)row_ink;
        ink_rows += row_ink > 0;
        lines += row_ink > 0 && !previous;
        previous = row_ink > 0;
    }
    uint64_t area = (uint64_t)r.w * (uint64_t)r.h;
    double permille = 1000.0 * (double)ink / (double)area;
    int ok = colours >= MIN_COLOURS && permille >= MIN_INK_PERMILLE && ink_rows >= MIN_INK_ROWS && lines >= MIN_LINES;
    printf("text area %dx%d+%d+%d: %u colours, background #%06x, ink in %.1f%% of the pixels, %d rows, %d lines: %s\n",
           r.w, r.h, r.x, r.y, colours, background, permille / 10.0, ink_rows, lines,
           ok ? "text is visible" : "NO TEXT (want >= 8 colours, >= 0.5% ink, >= 8 rows in >= 3 lines)");
    return ok;
}

static int parse_rect(char **argv, rect *r) {
    char *end;
    int v[4];
    for (int i = 0; i < 4; i++) {
        if (!argv[i]) return 0;
        long n = strtol(argv[i], &end, 10);
        if (*end || end == argv[i] || n < -100000 || n > 100000) return 0;
        v[i] = (int)n;
    }
    *r = (rect){v[0], v[1], v[2], v[3]};
    return 1;
}

int main(int argc, char **argv) {
    rect crop = {0}, text = {0};
    int has_crop = 0, has_text = 0;
    if (argc < 3) goto usage;
    for (int i = 3; i < argc; i += 5) {
        if (!strcmp(argv[i], "--crop") && i + 4 < argc && parse_rect(argv + i + 1, &crop))
            has_crop = 1;
        else if (!strcmp(argv[i], "--text-area") && i + 4 < argc && parse_rect(argv + i + 1, &text))
            has_text = 1;
        else
            goto usage;
    }

    GError *err = NULL;
    GdkPixbuf *screen = load_xwd(argv[1], &err);
    if (!screen) {
        fprintf(stderr, "vkllm-gtk-shot: %s\n", err->message);
        g_error_free(err);
        return 2;
    }
    int width = gdk_pixbuf_get_width(screen), height = gdk_pixbuf_get_height(screen);
    printf("screen %dx%d\n", width, height);

    int ok = 1;
    if (has_text) {
        if (clip(&text, width, height))
            ok = check_text(screen, text);
        else {
            printf("text area lies outside the screen\n");
            ok = 0;
        }
    }

    GdkPixbuf *out = screen;
    if (has_crop && clip(&crop, width, height))
        out = gdk_pixbuf_new_subpixbuf(screen, crop.x, crop.y, crop.w, crop.h);
    else
        g_object_ref(out);
    if (!gdk_pixbuf_save(out, argv[2], "png", &err, NULL)) {
        fprintf(stderr, "vkllm-gtk-shot: %s: %s\n", argv[2], err->message);
        g_error_free(err);
        ok = -1;
    } else {
        printf("wrote %s (%dx%d)\n", argv[2], gdk_pixbuf_get_width(out), gdk_pixbuf_get_height(out));
    }
    g_object_unref(out);
    g_object_unref(screen);
    return ok < 0 ? 2 : ok ? 0 : 1;

usage:
    fprintf(stderr, "usage: vkllm-gtk-shot SCREEN.xwd OUT.png [--crop X Y W H] [--text-area X Y W H]\n");
    return 2;
}
