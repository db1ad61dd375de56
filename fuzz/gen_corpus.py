#!/usr/bin/env python3
"""Writes the seed corpus fuzz/corpus/ (run from the repo root).

Each seed is two plan bytes (see fuzz/fuzz_inbound.c) and a payload. Plan
byte 1 bit 3 (0x08) makes calls of ours wait with ids 1 and 2 (3 timed
out) and a batch of ours with ids 4 to 6; 0x10 in plan byte 0 splits the
payload into messages at NUL bytes.
"""
import os

P = 0x08  # plan[1]: our calls 1, 2 are waiting

seeds = {
    # responses to our calls
    "resp_int_id": (0, P, b'{"jsonrpc":"2.0","id":1,"result":3}'),
    "resp_float_id": (1, P, b'{"jsonrpc":"2.0","id":2.0,"result":{"a":[1,2,null]}}'),
    "resp_str_id": (2, P, b'{"jsonrpc":"2.0","id":"1","result":null}'),
    "resp_null_id_error": (0, P, b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}'),
    "resp_no_id": (0, P, b'{"jsonrpc":"2.0","result":1}'),
    "resp_obj_id": (0, P, b'{"jsonrpc":"2.0","id":{"a":1},"result":1}'),
    "resp_array_id": (0, P, b'{"jsonrpc":"2.0","id":[1],"error":{"code":1,"message":"x"}}'),
    "resp_bool_id": (0, P, b'{"jsonrpc":"2.0","id":true,"result":false}'),
    "resp_late_id3": (0, P, b'{"jsonrpc":"2.0","id":3,"result":"late"}'),
    "resp_unknown_id": (0, P, b'{"jsonrpc":"2.0","id":99,"result":1}'),
    "err_full": (3, P, b'{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found","data":{"x":[1,2]}}}'),
    "err_no_message": (0, P, b'{"jsonrpc":"2.0","id":2,"error":{"code":5}}'),
    "err_string": (0, P, b'{"jsonrpc":"2.0","id":1,"error":"boom"}'),
    "err_number": (0, P, b'{"jsonrpc":"2.0","id":1,"error":42}'),
    "err_float_code": (0, P, b'{"jsonrpc":"2.0","id":1,"error":{"code":1.5e300,"message":[1]}}'),
    "err_null": (0, P, b'{"jsonrpc":"2.0","id":1,"error":null,"result":7}'),
    # requests and notifications to our handlers
    "req_echo": (4, 0, b'{"jsonrpc":"2.0","method":"echo","params":[1,"two",null,{"x":3}],"id":7}'),
    "req_named": (0, 0, b'{"jsonrpc":"2.0","method":"echo","params":{"a":1},"id":"abc"}'),
    "req_empty_obj": (0, 0, b'{"jsonrpc":"2.0","method":"count","params":{},"id":12345678901234567890}'),
    "req_fail": (0, 0, b'{"jsonrpc":"2.0","method":"fail","id":-0.0}'),
    "req_raise": (0, 0, b'{"jsonrpc":"2.0","method":"raise","params":[-32001,"no",{"d":1}],"id":1e3}'),
    "req_callback": (0, 0, b'{"jsonrpc":"2.0","method":"callback","params":[1],"id":[1]}'),
    "req_sleep": (0, 0x10, b'{"jsonrpc":"2.0","method":"sleep","params":[3,"z"],"id":{"o":1}}'),
    "req_nested_notif": (0, 0, b'{"jsonrpc":"2.0","method":"app.nested.echo","params":[true]}'),
    "req_unknown": (0, 0, b'{"jsonrpc":"2.0","method":"nope","id":1}'),
    "req_method_num": (0, 0, b'{"jsonrpc":"2.0","method":1,"id":1}'),
    "req_bad_params": (0, 0, b'{"jsonrpc":"2.0","method":"echo","params":"str","id":1}'),
    "req_callable": (0, 0, b'{"jsonrpc":"2.0","method":"callable","params":[1,null,3],"id":1}'),
    # fuzz findings (regressions)
    "finding_raise_inf_code": (0, 0, b'{"jsonrpc":"2.0","method":"raise","params":[1e999,"m",{"a":1}],"id":1}'),
    "req_echo_inf": (0, 0, b'{"jsonrpc":"2.0","method":"echo","params":[1e999],"id":1}'),
    "resp_null_id_str_error": (0, 0, b'{"jsonrpc":"2.0","id":null,"error":"bad"}'),
    "req_empty_array_params": (0, 0, b'{"jsonrpc":"2.0","method":"count","params":[],"id":1}'),
    # read in C (scan.c jr_push_request): args on the event, a table past four
    "req_many_args": (0, 0, b'{"id":-9223372036854775808,"params":[null,2,"3",[4],{"5":5},null],"method":"echo","jsonrpc":"2.0"}'),
    "req_four_args": (0, 0, b'{"jsonrpc":"2.0","method":"callable","params":[1,null,3,null],"id":-0}'),
    "req_dup_params": (0, 0, b'{"jsonrpc":"2.0","method":"echo","params":[1],"params":[2],"id":1}'),
    "close_early_callback": (0x30, 0x00, b'{"jsonrpc":"2.0","method":"sleep","params":[1]}\0'
                             b'{"jsonrpc":"2.0","method":"callback","params":[1],"id":2}'),
    # batches
    "batch_mixed": (0x05, P, b'[{"jsonrpc":"2.0","method":"echo","params":[1],"id":1},{"jsonrpc":"2.0","method":"notify_back"},'
                    b'{"jsonrpc":"2.0","id":2,"result":1},1,"x",{"foo":1},{"jsonrpc":"2.0","method":"fail","id":"f"}]'),
    "batch_empty": (0, 0, b'[]'),
    # answers to our batch (ids 4-6): whole, partial, mixed with others
    "batch_answer": (0, P, b'[{"jsonrpc":"2.0","id":6,"result":null},{"jsonrpc":"2.0","id":4,"result":3},'
                     b'{"jsonrpc":"2.0","id":5,"result":{"a":1}}]'),
    "batch_answer_mixed": (0x10, P, b'[{"jsonrpc":"2.0","id":4,"result":3},{"jsonrpc":"2.0","id":1,"result":3},'
                           b'{"jsonrpc":"2.0","id":4,"result":9},{"jsonrpc":"2.0","id":7,"result":1}]\0'
                           b'{"jsonrpc":"2.0","id":5,"error":{"code":-32601,"message":"no"}}\0'
                           b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"bad batch"}}'),
    "batch_bad_element": (0, 0, b'[1,{"a":,]'),
    "batch_notifs_only": (0, 0, b'[{"jsonrpc":"2.0","method":"echo"},{"jsonrpc":"2.0","method":"sleep","params":[2]}]'),
    # hostile and odd text
    "deep_array": (0, 0, b'[' * 2000 + b']' * 2000),
    "deep_params": (0, 0, b'{"jsonrpc":"2.0","method":"echo","params":' + b'[' * 999 + b']' * 999 + b',"id":1}'),
    "invalid_utf8": (0x08, 0, b'{"jsonrpc":"2.0","method":"echo","params":["\xff\xfe\xc0\x80"],"id":1}'),
    "non_json": (0, 0, b'hello, not json'),
    "empty": (0, 0, b''),
    "scalar": (0, 0, b'42'),
    "huge_numbers": (0, P, b'{"jsonrpc":"2.0","id":1e999,"result":-1e999}'),
    # results the core decodes where they lie (scan.c), or leaves alone
    "resp_deep_result": (0, P, b'{"jsonrpc":"2.0","id":1,"result":' + b'[' * 999 + b']' * 999 + b'}'),
    "resp_too_deep_result": (0, P, b'{"jsonrpc":"2.0","id":1,"result":' + b'{"a":' * 1000 + b'1' + b'}' * 1000 + b'}'),
    "resp_bad_result": (0, P, b'{"jsonrpc":"2.0","id":2,"result":["\\x",1.]}'),
    "resp_escaped_result": (0, P, b'{"jsonrpc":"2.0","id":2,"result":{"k\\u00e9":["\\ud83d\\ude00",-0.0,[],{}]}}'),
    "resp_dup_result": (0, P, b'{"jsonrpc":"2.0","id":1,"result":1,"result":[2]}'),
    "batch_answer_bad_result": (0, P, b'[{"jsonrpc":"2.0","id":4,"result":3},{"jsonrpc":"2.0","id":5,"result":[1,]}]'),
    "finding_hex_nan_ids": (0, 0, b'{"jsonrpc":"2.0","method":"echo","params":[NaN],"id":0x10}'),
    "escaped_key": (0, 0, b'{"jsonrpc":"2.0","method":"echo","i\\u0064":5,"id":6}'),
    "dup_id": (0, 0, b'{"id":1,"jsonrpc":"2.0","method":"echo","id":"two"}'),
    "too_large": (0x41, 0x03, b'{"jsonrpc":"2.0","method":"echo","params":["' + b'a' * 100 + b'"],"id":1}'),
    "many_msgs": (0x97, 0x88, b'{"jsonrpc":"2.0","id":1,"result":1}\0{"jsonrpc":"2.0","method":"echo","id":2}\0[]\0\0x'),
    "close_early": (0x20, 0x18, b'{"jsonrpc":"2.0","method":"sleep","params":[2],"id":1}'),
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
os.makedirs(out, exist_ok=True)
for name, (a, b, payload) in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([a, b]) + payload)
print(len(seeds), "seeds in", out)
