"""Golden strings for every chat template, and the answer/prompt segmentation."""
import pytest

from thresher.training.templates import ANSWER, MOSS_META, TEMPLATES, get_template

CONV = [{"role": "system", "content": "SYS"}, {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "A2"}]
NOSYS = CONV[1:]
EN_HDR = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
          "request.\n\n")

GOLDEN = {
    "open-assistant": (CONV, "<|system|>SYS</s><|prompter|>Q1</s><|assistant|>A1</s><|prompter|>Q2</s>"
                             "<|assistant|>A2</s>", ["A1</s>", "A2</s>"]),
    "alpaca": (NOSYS, EN_HDR + "### Instruction:\nQ1\n\n### Response:\nA1</s>\n\n### Instruction:\nQ2\n\n"
                               "### Response:\nA2</s>", ["A1</s>", "A2</s>"]),
    "alpaca-zh": (NOSYS, "以下是描述任务的指令。请编写一个适当完成请求的回复。\n\n### 指令:\nQ1\n\n### 回复:\nA1</s>"
                         "\n\n### 指令:\nQ2\n\n### 回复:\nA2</s>", ["A1</s>", "A2</s>"]),
    "chatml": (CONV, "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n"
                     "A1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\nA2<|im_end|>\n",
               ["A1<|im_end|>", "A2<|im_end|>"]),
    "llama-2": (CONV, "<s>[INST] <<SYS>>\nSYS\n<</SYS>>\n\nQ1 [/INST] A1 </s><s>[INST] Q2 [/INST] A2 </s>",
                [" A1 </s>", " A2 </s>"]),
    "llama-3": (CONV, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSYS<|eot_id|>"
                      "<|start_header_id|>user<|end_header_id|>\n\nQ1<|eot_id|>"
                      "<|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|>"
                      "<|start_header_id|>user<|end_header_id|>\n\nQ2<|eot_id|>"
                      "<|start_header_id|>assistant<|end_header_id|>\n\nA2<|eot_id|>",
                ["A1<|eot_id|>", "A2<|eot_id|>"]),
    "baichuan": (CONV, "SYS<reserved_106>Q1<reserved_107>A1</s><reserved_106>Q2<reserved_107>A2</s>",
                 ["A1</s>", "A2</s>"]),
    "moss": (CONV, "SYS<|Human|>: Q1<eoh>\n<|MOSS|>: A1<eom>\n<|Human|>: Q2<eoh>\n<|MOSS|>: A2<eom>\n",
             [" A1<eom>", " A2<eom>"]),
}

GEN = {
    "open-assistant": "<|prompter|>Q1</s><|assistant|>",
    "alpaca": EN_HDR + "### Instruction:\nQ1\n\n### Response:\n",
    "alpaca-zh": "以下是描述任务的指令。请编写一个适当完成请求的回复。\n\n### 指令:\nQ1\n\n### 回复:\n",
    "chatml": "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n",
    "llama-2": "<s>[INST] Q1 [/INST]",
    "llama-3": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nQ1<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "baichuan": "<reserved_106>Q1<reserved_107>",
    "moss": MOSS_META + "<|Human|>: Q1<eoh>\n<|MOSS|>:",
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden(name):
    conv, want, answers = GOLDEN[name]
    t = get_template(name)
    assert t.render(conv, bos="<s>", eos="</s>") == want
    assert [s.text for s in t.segments(conv, "<s>", "</s>") if s.kind == ANSWER] == answers


@pytest.mark.parametrize("name", sorted(GEN))
def test_generation_prompt(name):
    t = get_template(name)
    assert t.render([{"role": "user", "content": "Q1"}], "<s>", "</s>", add_generation_prompt=True) == GEN[name]


def test_alpaca_with_input():
    conv = [{"role": "user", "content": "Q1", "input": "I1"}, {"role": "assistant", "content": "A1"}]
    assert get_template("alpaca").render(conv) == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n### Instruction:\nQ1\n\n### Input:\nI1\n\n"
        "### Response:\nA1</s>")
    assert get_template("alpaca-zh").render(conv) == (
        "以下是描述任务的指令，以及提供进一步上下文的输入。请编写一个适当完成请求的回复。\n\n### 指令:\nQ1\n\n"
        "### 输入:\nI1\n\n### 回复:\nA1</s>")


def test_every_answer_ends_with_a_stop_token():
    for name, t in TEMPLATES.items():
        stops = t.resolved_stop_tokens("<s>", "</s>")
        for s in t.segments(NOSYS, "<s>", "</s>"):
            if s.kind == ANSWER:
                assert any(s.text.rstrip(" ").endswith(x) for x in stops), (name, s.text)


def test_role_order_is_checked():
    with pytest.raises(ValueError):
        get_template("chatml").render([{"role": "assistant", "content": "x"}])
    with pytest.raises(ValueError):
        get_template("chatml").render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    with pytest.raises(KeyError):
        get_template("nope")
