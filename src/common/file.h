/* SPDX-License-Identifier: GPL-3.0-only */
/* Small files on disk: the config directory, whole-file reads with a size
 * cap, atomic writes (temp file, fsync, rename) and the permission check for
 * secrets (spec/06-files-and-cli.md §1-§2). No TLS, no event loop. */
#ifndef PRD_FILE_H
#define PRD_FILE_H

#include <stddef.h>
#include <stdint.h>

/* prd_config_dir_ensure creates |dir| (and parents) with mode 0700 if it does
 * not exist. Refuses a directory everyone may write to; warns about one its
 * group may write to. Returns 0, or -1 with a one-line message in |err|. */
int prd_config_dir_ensure(const char *dir, char *err, size_t errlen);

/* prd_file_read reads a whole file of at most |maxlen| bytes into a malloc'ed
 * buffer the caller frees. Returns 0, or -errno (-EISDIR for a directory) or
 * PRD_ERR_FRAME_TOO_LARGE; on error |*pdata| is NULL. */
int prd_file_read(uint8_t **pdata, size_t *plen, const char *path,
                  size_t maxlen);

/* prd_file_read_mode is prd_file_read that also stores the permission bits
 * (st_mode & 07777) of the descriptor it read in |*pmode|, so that a check
 * of them applies to the very file read. */
int prd_file_read_mode(uint8_t **pdata, size_t *plen, unsigned *pmode,
                       const char *path, size_t maxlen);

/* prd_file_mode_private tells whether |mode| keeps a secret: 1 when neither
 * group nor others may read it (spec/06-files-and-cli.md §2.1 rule 4:
 * mode & 0044), else 0. */
int prd_file_mode_private(unsigned mode);

/* prd_file_read_private is prd_file_read_mode for a secret: a file that
 * group or others may read is refused with PRD_ERR_FILE_MODE, its bytes
 * wiped and freed (|*pmode| still tells the mode, for the message). */
int prd_file_read_private(uint8_t **pdata, size_t *plen, unsigned *pmode,
                          const char *path, size_t maxlen);

/* prd_file_write_temp writes |data| into a new file next to |path| named
 * ".<base>.tmp.<pid>.<random>" (created with O_EXCL, so never someone
 * else's), sets |mode| exactly (whatever the umask), fsyncs it and stores
 * its name in |tmp|. Returns 0 or -errno; on error no temp file is left. */
int prd_file_write_temp(char *tmp, size_t tmplen, const char *path,
                        const uint8_t *data, size_t len, unsigned mode);

/* prd_file_write_atomic writes |data| to |path| via a temp file, fsync,
 * rename and an fsync of the directory, with |mode|: readers see the old
 * file or the new one, never a part. Returns 0 or -errno. Blocks on the
 * disk: never call it on an event loop. */
int prd_file_write_atomic(const char *path, const uint8_t *data, size_t len,
                          unsigned mode);

/* prd_file_publish_noreplace gives the complete file |tmp| the name |path|
 * unless |path| already exists (then -EEXIST), and removes the name |tmp|
 * either way. Returns 0 or -errno. */
int prd_file_publish_noreplace(const char *tmp, const char *path);

/* prd_file_fsync_dir makes a rename or link in |dir| durable. Returns 0 or
 * -errno. */
int prd_file_fsync_dir(const char *dir);

/* prd_file_dir_of writes the directory part of |path| ("." when there is
 * none) into |dir|. Returns 0 or -ENAMETOOLONG. */
int prd_file_dir_of(char *dir, size_t dirlen, const char *path);

#endif
