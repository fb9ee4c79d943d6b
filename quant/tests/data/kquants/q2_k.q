ˆh‰þYœ«GXg˜ÌÊœïŠ¯ŒkgÊêSæY
²&o„†›©Öj˜h§ˆÚh±Z%ŒÞbk”ž´rmI(VÛmä®UQeUuÊY|¨_•¥W?/D2zW8{WGXÿF«ZFyyXiLÊ¢b±¢va‰¡q‡Ù–·Úéµ‰åžš¸Œ•†”¦TURôR–Z5wÕ§ÚfZF}{¶ŠÚ}¥r~²–’²Ûš ²%o*ïù¿©™ÍÚÞ‡È™ÚÉ˜Ýx­d©ÐŠÄ¡æVæAy‡ù)®dk[wojm“¢]«
fí|t˜ÙøˆùY¹Bg#˜y¨{n¦­vñ+~¾¯•§¨k	a$¬&