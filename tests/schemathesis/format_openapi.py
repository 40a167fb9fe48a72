"""Writes openapi.json in its one layout: two-space indent, a value inline where it fits in
100 columns. Usage: python3 tests/schemathesis/format_openapi.py openapi.json openapi.json"""
import json, sys
W=100
def inline(v):
    if isinstance(v,dict):
        if not v: return "{}"
        return "{ "+", ".join(json.dumps(k,ensure_ascii=False)+": "+inline(x) for k,x in v.items())+" }"
    if isinstance(v,list):
        return "["+", ".join(inline(x) for x in v)+"]"
    return json.dumps(v,ensure_ascii=False)
def render(v,ind,prefix_len):
    one=inline(v)
    if prefix_len+len(one)<=W and not ('\n' in one):
        return one
    pad="  "*(ind+1)
    if isinstance(v,dict):
        items=[]
        for k,x in v.items():
            key=json.dumps(k,ensure_ascii=False)+": "
            items.append(pad+key+render(x,ind+1,len(pad)+len(key)))
        return "{\n"+",\n".join(items)+"\n"+"  "*ind+"}"
    if isinstance(v,list):
        items=[pad+render(x,ind+1,len(pad)) for x in v]
        return "[\n"+",\n".join(items)+"\n"+"  "*ind+"]"
    return one
d=json.load(open(sys.argv[1]))
open(sys.argv[2],'w').write(render(d,0,0)+"\n")
