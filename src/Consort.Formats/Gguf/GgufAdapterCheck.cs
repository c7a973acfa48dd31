namespace Consort.Formats.Gguf;

/// <summary>
/// Whether a LoRA adapter file fits a model file: every adapted tensor exists in the model with the shape the adapter's
/// pair implies (lora_a {n_in, r}, lora_b {r, n_out} against the model's {n_in, n_out}). Checked in managed code before
/// llama.cpp sees the pair, so an adapter trained for another base is refused with a message instead of a load failure.
/// </summary>
public static class GgufAdapterCheck
{
    /// <summary>Null when <paramref name="adapter"/> fits <paramref name="model"/>, else what does not fit (one sentence).</summary>
    public static string? Problem(GgufFile model, GgufFile adapter)
    {
        if (adapter.FileKind != "adapter")
            return $"it is not a LoRA adapter ({GgufKeys.General.Type} is {MessageText.Quote(adapter.FileKind ?? "(missing)")})";
        GgufValidator.ThrowIfInvalid(adapter);
        if (adapter.Architecture is { } aa && model.Architecture is { } ma && !string.Equals(aa, ma, StringComparison.OrdinalIgnoreCase))
            return $"the adapter is for architecture {MessageText.Quote(aa)}, the model is {MessageText.Quote(ma)}";
        foreach (var a in adapter.Tensors.Where(t => t.Name.EndsWith(".lora_a", StringComparison.Ordinal)))
        {
            string target = a.Name[..^".lora_a".Length];
            if (adapter.FindTensor(target + ".lora_b") is not { } b) continue; // the validator reported it
            if (model.FindTensor(target) is not { } w)
                return $"it adapts {MessageText.Quote(target)}, which the model does not have (an adapter for a different base model)";
            if (w.Dimensions.Length != 2 || a.Dimensions[0] != w.Dimensions[0] || b.Dimensions[1] != w.Dimensions[1])
                return $"its pair for {MessageText.Quote(target)} is {a.ShapeText} x {b.ShapeText}, but the model's tensor is {w.ShapeText} " +
                       "(an adapter for a different base model)";
        }
        return null;
    }
}
