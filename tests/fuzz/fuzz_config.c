/*
 * libFuzzer harness for the configuration parser: arbitrary bytes as an INI
 * file must give either a snapshot or FILE:LINE: errors, never a crash, a
 * leak or an error line without the "name:LINE: " prefix.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *errs = NULL;
    size_t errlen = 0;
    FILE *f = open_memstream(&errs, &errlen);
    struct config *c = config_load_string("fuzz.ini", text, f);
    fclose(f);
    if (c == NULL && errlen == 0)
        abort(); /* refused without a reason */
    for (char *line = errs; line != NULL && *line; line = strchr(line, '\n') + 1) {
        if (strncmp(line, "fuzz.ini:", 9) != 0)
            abort();
        if (strchr(line, '\n') == NULL)
            abort();
    }
    config_unref(c);
    free(errs);
    free(text);
    return 0;
}
