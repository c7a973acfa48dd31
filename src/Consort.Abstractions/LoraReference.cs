namespace Consort;

/// <summary>A LoRA adapter a local model applies on top of its weights file at load time.</summary>
/// <param name="Path">The adapter file (full path).</param>
/// <param name="Scale">Its scale (llama.cpp multiplies the adapter's alpha / r · B A by it).</param>
public sealed record LoraReference(string Path, double Scale);
