-- Arm C (bench/run.sh): the C libraries the OpenResty peer calls through
-- LuaJIT's FFI: libcrypto (HMAC-SHA256, CRYPTO_memcmp), liblmdb (the
-- profile store, the way Kong's lua-resty-lmdb uses it) and libmaxminddb
-- (geo).  Declarations follow the Debian 12 headers; MMDB_entry_data_s's
-- union holds an unsigned __int128, hence the explicit padding.
local ffi = require "ffi"

ffi.cdef [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md,
                    unsigned int *md_len);
int CRYPTO_memcmp(const void *a, const void *b, size_t len);
int RAND_bytes(unsigned char *buf, int num);

typedef struct MDB_env MDB_env;
typedef struct MDB_txn MDB_txn;
typedef unsigned int MDB_dbi;
typedef struct MDB_val { size_t mv_size; void *mv_data; } MDB_val;
int  mdb_env_create(MDB_env **env);
int  mdb_env_set_mapsize(MDB_env *env, size_t size);
int  mdb_env_set_maxdbs(MDB_env *env, MDB_dbi dbs);
int  mdb_env_set_maxreaders(MDB_env *env, unsigned int readers);
int  mdb_env_open(MDB_env *env, const char *path, unsigned int flags,
                  unsigned int mode);
void mdb_env_close(MDB_env *env);
int  mdb_reader_check(MDB_env *env, int *dead);
int  mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned int flags,
                   MDB_txn **txn);
int  mdb_txn_commit(MDB_txn *txn);
void mdb_txn_abort(MDB_txn *txn);
void mdb_txn_reset(MDB_txn *txn);
int  mdb_txn_renew(MDB_txn *txn);
int  mdb_dbi_open(MDB_txn *txn, const char *name, unsigned int flags,
                  MDB_dbi *dbi);
int  mdb_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data);
int  mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data,
             unsigned int flags);
const char *mdb_strerror(int err);

typedef struct MMDB_s MMDB_s;
typedef struct MMDB_entry_s { const MMDB_s *mmdb; uint32_t offset; }
    MMDB_entry_s;
typedef struct MMDB_lookup_result_s {
    bool found_entry; MMDB_entry_s entry; uint16_t netmask;
} MMDB_lookup_result_s;
typedef struct MMDB_entry_data_s {
    bool has_data;
    uint8_t _pad[15];
    union {
        uint32_t pointer; const char *utf8_string; double double_value;
        const uint8_t *bytes; uint16_t uint16; uint32_t uint32;
        int32_t int32; uint64_t uint64; uint8_t uint128[16]; bool boolean;
        float float_value;
    };
    uint32_t offset; uint32_t offset_to_next; uint32_t data_size;
    uint32_t type;
} MMDB_entry_data_s;
int MMDB_open(const char *const filename, uint32_t flags, MMDB_s *const mmdb);
MMDB_lookup_result_s MMDB_lookup_string(const MMDB_s *const mmdb,
    const char *const ipstr, int *const gai_error, int *const mmdb_error);
int MMDB_aget_value(MMDB_entry_s *const start,
    MMDB_entry_data_s *const entry_data, const char *const *const path);
void MMDB_close(MMDB_s *const mmdb);
const char *MMDB_strerror(int error_code);
]]

assert(ffi.sizeof("MMDB_entry_data_s") == 48, "MMDB_entry_data_s layout")

local function load(names)
    local err
    for _, n in ipairs(names) do
        local ok, lib = pcall(ffi.load, n)
        if ok then return lib end
        err = lib
    end
    error("omnic: cannot load " .. names[1] .. ": " .. tostring(err))
end

return {
    crypto = load({ "crypto", "libcrypto.so.3" }),
    lmdb = load({ "lmdb", "liblmdb.so.0" }),
    mmdb = load({ "maxminddb", "libmaxminddb.so.0" }),
    MMDB_S_SIZE = 136,         -- sizeof(MMDB_s), Debian 12's libmaxminddb 1.7
    MDB_RDONLY = 0x20000,
    MDB_NOTLS = 0x200000,
    MDB_NOMETASYNC = 0x40000,
    MDB_NOTFOUND = -30798,
    MMDB_MODE_MMAP = 1,
    MMDB_UTF8 = 2,
    MMDB_DOUBLE = 3,
}
